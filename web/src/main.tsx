import { render } from "preact";
import { useState } from "preact/hooks";
import { apiToken } from "./api.js";
import { TOKEN_CHANGED, useRoute } from "./hooks.js";
import { ClustersPage } from "./pages/clusters.js";
import { JobPage } from "./pages/job.js";
import { JobsPage } from "./pages/jobs.js";
import { QueuesPage } from "./pages/queues.js";
import { RecurrentPage } from "./pages/recurrent.js";
import { StoragePage } from "./pages/storage.js";
import "./style.css";

const SECTIONS = [
  { path: "queues", label: "Queues" },
  { path: "jobs", label: "Jobs" },
  { path: "recurrent", label: "Recurrent tasks" },
  { path: "storage", label: "Storage locations" },
  { path: "clusters", label: "Clusters" },
  // "runners" joins these once the API lists connected runners (ListRunners).
];

function TokenField() {
  const [value, setValue] = useState(apiToken.get());
  const [saved, setSaved] = useState(false);
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        apiToken.set(value);
        setSaved(true);
        window.dispatchEvent(new Event(TOKEN_CHANGED));
      }}
    >
      <label for="api-token">API token</label>
      <input
        id="api-token"
        type="password"
        autocomplete="off"
        placeholder="none"
        value={value}
        onInput={(e) => {
          setValue(e.currentTarget.value);
          setSaved(false);
        }}
      />
      <button type="submit">{saved ? "Saved" : "Use"}</button>
    </form>
  );
}

function App() {
  const route = useRoute();
  const section = route.parts[0] ?? "jobs";
  let page;
  if (section === "jobs" && route.parts[1]) page = <JobPage id={route.parts[1]} query={route.query} />;
  else if (section === "queues") page = <QueuesPage />;
  else if (section === "recurrent") page = <RecurrentPage />;
  else if (section === "storage") page = <StoragePage />;
  else if (section === "clusters") page = <ClustersPage />;
  else page = <JobsPage query={route.query} />;
  return (
    <>
      <a
        class="skip"
        href="#/"
        onClick={(e) => {
          // The fragment holds the route, so the link moves focus itself.
          e.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Sluice</span>
        <nav aria-label="Sections">
          <ul>
            {SECTIONS.map((s) => (
              <li key={s.path}>
                <a href={`#/${s.path}`} aria-current={section === s.path ? "page" : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <TokenField />
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
