import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

// HTTP/2 requests come through Node's compatibility API, which has the same shape.
type Request = Pick<IncomingMessage, "url" | "method">;
type Response = ServerResponse;

/** Where `npm run build:console` writes the console (web/dist in the repository). */
export const CONSOLE_DIST = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "web", "dist");

/** The path prefix the console is served under. */
export const CONSOLE_PREFIX = "/ui/";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * Vite names the files it builds under assets/ after their content, so they
 * never change: browsers may keep them for a year. index.html names them and
 * must be revalidated on every load, or a new build would not be seen.
 */
const IMMUTABLE = "public, max-age=31536000, immutable";
const REVALIDATE = "no-cache";

const MISSING_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice console not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The Sluice console has not been built</h1>
<p>This server serves the console from <code>web/dist</code>, which does not exist yet.
Build it from the repository's root with</p>
<pre>npm run build:console</pre>
<p>(<code>npm start</code> builds it before starting the server), then reload this page.
The API answers on this port either way.</p>
</body></html>
`;

/** Whether a request is the console's: `/`, `/ui` or anything under `/ui/`. */
export function isConsolePath(url: string | undefined): boolean {
  const path = (url ?? "/").split("?")[0];
  return path === "/" || path === "/ui" || path.startsWith(CONSOLE_PREFIX);
}

/**
 * Serves the built console's static files under /ui/ (and redirects / there).
 * Only GET and HEAD; paths that leave `dir` are refused; a path with no file
 * is answered with index.html, so that a reload of any console URL works.
 */
export function consoleHandler(dir: string = CONSOLE_DIST): (req: Request, res: Response) => void {
  const root = resolve(dir);
  const send = (res: Response, status: number, headers: Record<string, string>, body?: string) => {
    res.writeHead(status, headers);
    if (body === undefined) res.end();
    else res.end(body);
  };
  return (req, res) => {
    void (async () => {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/" || path === "/ui") return send(res, 308, { location: CONSOLE_PREFIX });
      if (req.method !== "GET" && req.method !== "HEAD") {
        return send(res, 405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, "the console is read with GET\n");
      }
      let relative: string;
      try {
        relative = decodeURIComponent(path.slice(CONSOLE_PREFIX.length));
      } catch {
        return send(res, 400, { "content-type": "text/plain; charset=utf-8" }, "malformed path\n");
      }
      if (relative.includes("\0")) return send(res, 400, { "content-type": "text/plain; charset=utf-8" }, "malformed path\n");
      let file = resolve(root, relative === "" ? "index.html" : relative);
      if (file !== root && !file.startsWith(root + sep)) {
        return send(res, 404, { "content-type": "text/plain; charset=utf-8" }, "not found\n");
      }
      let info = await stat(file).catch(() => null);
      if (!info?.isFile()) {
        // A file that should exist (an asset) is a 404; a console route is the app.
        if (relative.startsWith("assets/") || extname(relative) !== "") {
          return send(res, 404, { "content-type": "text/plain; charset=utf-8" }, "not found\n");
        }
        file = join(root, "index.html");
        info = await stat(file).catch(() => null);
        if (!info?.isFile()) return send(res, 503, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }, MISSING_PAGE);
      }
      const hashed = file.startsWith(join(root, "assets") + sep);
      res.writeHead(200, {
        "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream",
        "content-length": String(info.size),
        "cache-control": hashed ? IMMUTABLE : REVALIDATE,
        "x-content-type-options": "nosniff",
      });
      if (req.method === "HEAD") return void res.end();
      createReadStream(file)
        .on("error", () => res.destroy())
        .pipe(res);
    })().catch(() => {
      if (!res.headersSent) send(res, 500, { "content-type": "text/plain; charset=utf-8" }, "could not read the console's files\n");
      else res.destroy();
    });
  };
}
