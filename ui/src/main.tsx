// The Vigil console: one page per task, reached by the address's #fragment, so every view has
// a URL to bookmark or send; the vault serves this bundle at / and nothing else of it.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { can, get, Me, post, setCsrf } from "./api";
import { Agents } from "./pages/agents";
import { Audit } from "./pages/audit";
import { Devices } from "./pages/devices";
import { Holds } from "./pages/holds";
import { People } from "./pages/people";
import { Recordings } from "./pages/recordings";
import { SignIn } from "./pages/signin";

interface Page {
  path: string;
  title: string;
  /** Shown to roles with any of these permissions. */
  needs: string[];
  view: (props: { param?: string }) => preact.JSX.Element;
}

const PAGES: Page[] = [
  { path: "agents", title: "Live agents", needs: ["search"], view: Agents },
  { path: "recordings", title: "Recordings", needs: ["search"], view: Recordings },
  { path: "audit", title: "Audit log", needs: ["audit"], view: Audit },
  { path: "holds", title: "Legal holds", needs: ["hold"], view: Holds },
  { path: "people", title: "Users and roles", needs: ["users"], view: People },
  { path: "devices", title: "Devices", needs: ["devices"], view: Devices },
];

/** The page and its parameter (`#/recordings/<session>`). */
function route(): string {
  return location.hash.replace(/^#\/?/, "");
}

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [path, setPath] = useState(route());
  const refresh = () => get<Me>("/v1/me").then(setMe, () => setMe(null));
  useEffect(() => {
    void refresh();
    const onHash = () => setPath(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  if (me === undefined) return <p aria-busy="true">Loading…</p>;
  if (me === null) return <SignIn onSignedIn={() => void refresh()} />;
  const mine = PAGES.filter((p) => p.needs.some((n) => can(me, n)));
  const [name, param] = path.split("/");
  const page = mine.find((p) => p.path === name) ?? mine[0];
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header>
        <span class="brand">Vigil</span>
        <nav aria-label="Console">
          <ul>
            {mine.map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={p === page ? "page" : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {me.name} ({me.role})
          <button
            type="button"
            onClick={async () => {
              await post("/v1/logout").catch(() => undefined);
              setCsrf(null);
              setMe(null);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      {page ? (
        <page.view key={path} param={page.path === name ? param : undefined} />
      ) : (
        <main id="main">
          <h1>Nothing to show for your role</h1>
        </main>
      )}
    </div>
  );
}

render(<App />, document.getElementById("app")!);
