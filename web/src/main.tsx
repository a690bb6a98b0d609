// The dashboard: sign-in, then the shell (navigation, live status) around
// the page the path names.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { currentSession, logout, type Session } from "./api";
import { match, navigate, useLocation } from "./router";
import { can, roleLabel } from "./roles";
import { feedInfo, startLive, useLiveStatus, useSession } from "./state";
import { Link, Toasts } from "./ui";
import { LoginPage } from "./pages/login";
import { LeadsPage } from "./pages/leads";
import { LeadPage } from "./pages/lead";
import { AgentsPage } from "./pages/agents";
import { PipelinePage } from "./pages/pipeline";
import { SequencesPage } from "./pages/sequences";
import { ModelsPage } from "./pages/models";
import { SystemPage } from "./pages/system";

interface NavItem {
  href: string;
  label: string;
  icon: string;
  show: (s: Session) => boolean;
}

const nav: NavItem[] = [
  { href: "/leads", label: "Leads", icon: "M4 6h16M4 12h16M4 18h10", show: () => true },
  { href: "/agents", label: "Agents", icon: "M8 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm8 2a3 3 0 1 0 0-6M2 21v-1a6 6 0 0 1 12 0v1m2 0v-1a5 5 0 0 0-3-4.6", show: () => true },
  { href: "/pipeline", label: "Pipeline", icon: "M3 4h18l-7 8v6l-4 2v-8z", show: () => true },
  { href: "/sequences", label: "Sequences", icon: "M4 5h6v6H4zM14 13h6v6h-6zM10 8h4a3 3 0 0 1 3 3v2", show: () => true },
  { href: "/ml-models", label: "Models", icon: "M4 20V10m6 10V4m6 16v-7m4 7H2", show: (s) => can(s.user.role, "events.read") },
  { href: "/system", label: "System", icon: "M12 3v3m0 12v3M3 12h3m12 0h3M5.6 5.6l2.1 2.1m8.6 8.6 2.1 2.1m0-12.8-2.1 2.1m-8.6 8.6-2.1 2.1M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z", show: () => true },
];

function Icon(p: { d: string }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={p.d} />
    </svg>
  );
}

function LiveDot() {
  const st = useLiveStatus();
  const text = st === "live" ? "Live" : st === "connecting" ? "Connecting…" : st === "reconnecting" ? "Reconnecting…" : "Offline";
  const fi = feedInfo();
  return (
    <span class={"live live-" + st} role="status" aria-live="polite" data-testid="live-status" data-status={st} data-reconnects={fi.reconnects}>
      <span class="live-dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function Shell(p: { s: Session }) {
  const { path } = useLocation();
  const [menu, setMenu] = useState(false);
  useEffect(() => setMenu(false), [path]);
  // After a client-side navigation the link that was followed is gone:
  // focus the new page's content, as a full page load would start there.
  const firstPath = useRef(path);
  useEffect(() => {
    if (path === firstPath.current) return;
    firstPath.current = "";
    document.getElementById("main")?.focus({ preventScroll: true });
  }, [path]);
  // The phone menu closes with Escape and gives focus back to its button.
  // One listener for the app's life, reading the state through a ref: one
  // added when the menu opens would be added after paint, and an Escape
  // pressed right after opening could come before it.
  const menuOpen = useRef(menu);
  menuOpen.current = menu;
  useEffect(() => {
    const k = (e: KeyboardEvent) => {
      if (e.key !== "Escape" || !menuOpen.current) return;
      setMenu(false);
      document.querySelector<HTMLElement>("button.menu-btn")?.focus();
    };
    document.addEventListener("keydown", k);
    return () => document.removeEventListener("keydown", k);
  }, []);
  const items = nav.filter((n) => n.show(p.s));
  let page;
  let m: Record<string, string> | null;
  if ((m = match("/leads/:id", path))) page = <LeadPage id={Number(m.id)} />;
  else if (path === "/leads" || path === "/") page = <LeadsPage />;
  else if (path === "/agents") page = <AgentsPage />;
  else if (path === "/pipeline") page = <PipelinePage />;
  else if (path === "/sequences") page = <SequencesPage />;
  else if (path === "/ml-models") page = <ModelsPage />;
  else if (path === "/system") page = <SystemPage />;
  else
    page = (
      <div class="page">
        <h1>Not found</h1>
        <p>
          There is no page at <code>{path}</code>. <Link href="/leads">Go to leads</Link>.
        </p>
      </div>
    );
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <button type="button" class="menu-btn" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>
          <Icon d="M4 6h16M4 12h16M4 18h16" />
          <span class="sr-only">Menu</span>
        </button>
        <Link href="/leads" class="brand" aria-label="ehub home">
          <span class="brand-mark" aria-hidden="true">e</span>
          <span class="brand-name">ehub</span>
        </Link>
        <span class="tenant" title="Tenant">{p.s.tenant}</span>
        <div class="topbar-right">
          <LiveDot />
          <span class="who" title={p.s.user.email}>
            <span class="who-email">{p.s.user.email}</span>
            <span class="badge badge-info" data-testid="role">{roleLabel[p.s.user.role]}</span>
          </span>
          <button
            type="button"
            class="btn btn-ghost btn-small"
            onClick={async () => {
              await logout();
              navigate("/login", true);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <nav id="nav" class={"sidenav" + (menu ? " open" : "")} aria-label="Main">
        <ul>
          {items.map((n) => (
            <li key={n.href}>
              <Link href={n.href} class={"nav-link" + (path.startsWith(n.href) || (n.href === "/leads" && path === "/") ? " active" : "")}>
                <Icon d={n.icon} />
                <span>{n.label}</span>
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </div>
  );
}

function App() {
  const s = useSession();
  const { path } = useLocation();
  useEffect(() => {
    if (!s && path !== "/login") navigate("/login" + (path !== "/" ? "?next=" + encodeURIComponent(path) : ""), true);
    if (s && path === "/login") navigate("/leads", true);
  }, [s, path]);
  useEffect(() => {
    if (s) startLive(s);
    // restart the feed only for a different login, not on token refresh
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [s?.user.id, s?.tenant]);
  return (
    <>
      {s && path !== "/login" ? <Shell s={s} /> : <LoginPage />}
      <Toasts />
    </>
  );
}

if (!currentSession() && location.pathname !== "/login") {
  history.replaceState(null, "", "/login" + (location.pathname !== "/" ? "?next=" + encodeURIComponent(location.pathname) : ""));
}
render(<App />, document.getElementById("app")!);
