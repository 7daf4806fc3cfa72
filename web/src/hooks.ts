import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./format.js";

/** Sent on window when the API token changes. */
export const TOKEN_CHANGED = "sluice:token-changed";

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  /** Loads again now. */
  reload: () => Promise<void>;
  loadedAt: Date | undefined;
}

/**
 * Loads with `load` when `key` changes, and again every `everyMs` while the
 * page is visible and `live` is true. Answers that arrive for an old key are
 * dropped.
 */
export function usePolled<T>(load: () => Promise<T>, key: string, everyMs: number, live = true): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loadedAt?: Date; key?: string }>({});
  const loadRef = useRef(load);
  loadRef.current = load;
  const periodRef = useRef(everyMs);
  periodRef.current = everyMs;
  const generation = useRef(0);

  const run = useCallback((): Promise<void> => {
    const mine = ++generation.current;
    return loadRef.current().then(
      (data) => void (mine === generation.current && setState({ data, loadedAt: new Date(), key })),
      (e) => void (mine === generation.current && setState((s) => ({ ...s, error: errorText(e), key }))),
    );
  }, [key]);

  useEffect(() => {
    setState((s) => (s.key === key ? s : {}));
    // A new token may let calls through that were refused: load again at
    // once, and drop the refusal meanwhile (it comes back if the load fails).
    const reload = () => {
      setState((s) => (s.error === undefined ? s : { ...s, error: undefined }));
      void run();
    };
    window.addEventListener(TOKEN_CHANGED, reload);
    // The next load is timed from the end of the last one, so that slow
    // answers never pile up; the period is read each time, so that changing
    // it does not load again at once.
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const next = () => {
      if (!stopped && live) timer = setTimeout(tick, periodRef.current);
    };
    const tick = () => {
      if (document.visibilityState === "visible") void run().finally(next);
      else next();
    };
    void run().finally(next);
    return () => {
      stopped = true;
      clearTimeout(timer);
      window.removeEventListener(TOKEN_CHANGED, reload);
    };
  }, [key, live, run]);

  return { data: state.key === key ? state.data : undefined, error: state.error, reload: run, loadedAt: state.loadedAt };
}

export interface Route {
  /** Path segments after "#/", e.g. ["jobs", "42"]. */
  parts: string[];
  query: URLSearchParams;
}

function readHash(): Route {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

/** The console's routes live in the URL's fragment: the server serves one page. */
export function useRoute(): Route {
  const [route, setRoute] = useState(readHash);
  useEffect(() => {
    const onChange = () => setRoute(readHash());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export function navigate(path: string, query?: URLSearchParams): void {
  const q = query && [...query.keys()].length > 0 ? `?${query.toString()}` : "";
  window.location.hash = `#/${path}${q}`;
}
