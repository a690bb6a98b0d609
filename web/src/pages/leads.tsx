// Leads: the live table. Rows come from GET /v1/leads (every page, up to
// MAX_ROWS) and stay current through the realtime feed; filters are the
// API's, search included; only the visible rows are in the DOM.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { agentName, useAgents } from "../agents";
import { ago, count, leadName, moneyRange, phone, score100 } from "../format";
import type { Filters, Lead, SortKey } from "../merge";
import { linkClick } from "../router";
import { ensureLeadsLoaded, loadState, MAX_ROWS, reloadLeads, table, useTable } from "../state";
import { Badge, ErrorNote, PageHead, ScorePill, useDebounced, useTick, type Tone } from "../ui";

const ROW = 56;

export function statusTone(s: string | null | undefined): Tone {
  return s === "won" ? "good" : s === "lost" ? "bad" : s === "abandoned" ? "warn" : "info";
}

function readFilters(): Filters {
  // Back on /leads from another page: keep the filters in use.
  if (!location.search && loadState.generation) return { ...table.filters };
  const q = new URLSearchParams(location.search);
  const num = (k: string) => (q.get(k) !== null && q.get(k) !== "" ? Number(q.get(k)) : null);
  return {
    q: q.get("q") || "",
    status: q.get("status") || "",
    stage: q.get("stage") || "",
    source: q.get("source") || "",
    agent_id: num("agent_id"),
    score_min: num("score_min"),
  };
}

function writeFilters(f: Filters, sort: SortKey) {
  const q = new URLSearchParams();
  if (f.q) q.set("q", f.q);
  if (f.status) q.set("status", f.status);
  if (f.stage) q.set("stage", f.stage);
  if (f.source) q.set("source", f.source);
  if (f.agent_id != null) q.set("agent_id", String(f.agent_id));
  if (f.score_min != null) q.set("score_min", String(f.score_min));
  if (sort !== "score_desc") q.set("sort", sort);
  const s = q.toString();
  history.replaceState(null, "", "/leads" + (s ? "?" + s : ""));
}

const SOURCES = ["zillow", "realtor.com", "facebook_ads", "open_house", "referral", "website", "ghl"];

export function LeadsPage() {
  useTable();
  useTick(5000);
  const agents = useAgents();
  const initial = useMemo(readFilters, []);
  const [f, setF] = useState<Filters>(initial);
  const [sort, setSort] = useState<SortKey>(() =>
    !location.search && loadState.generation ? table.sort : (new URLSearchParams(location.search).get("sort") as SortKey) || "score_desc");
  const dq = useDebounced(f.q, 250);
  const effective = useMemo(() => ({ ...f, q: dq }), [f.status, f.stage, f.source, f.agent_id, f.score_min, dq]);

  useEffect(() => {
    const same = JSON.stringify(table.filters) === JSON.stringify(effective);
    table.setFilters(effective);
    writeFilters(effective, sort);
    if (!same || !loadState.generation) reloadLeads();
    else ensureLeadsLoaded();
  }, [effective]);
  useEffect(() => {
    table.setSort(sort);
    writeFilters(effective, sort);
  }, [sort]);

  const rows = table.view();
  const stages = useMemo(() => {
    const s = new Set<string>(["new", "contacted", "qualified", "showing", "offer", "closed"]);
    for (const l of rows.slice(0, 2000)) if (l.stage) s.add(l.stage);
    return [...s];
  }, [rows.length > 0]);
  const set = (k: keyof Filters, v: unknown) => setF({ ...f, [k]: v });
  const sortBtn = (label: string, a: SortKey, b: SortKey) => {
    const on = sort === a || sort === b;
    return (
      <button
        type="button"
        class={"th-sort" + (on ? " on" : "")}
        aria-pressed={on}
        onClick={() => setSort(sort === a ? b : a)}
      >
        {label}
        <span aria-hidden="true">{on ? (sort === a ? " ↓" : " ↑") : ""}</span>
      </button>
    );
  };
  const filtered = !!(f.q || f.status || f.stage || f.source || f.agent_id != null || f.score_min != null);
  return (
    <div class="page page-leads">
      <PageHead
        title="Leads"
        subtitle={
          <span data-testid="lead-count" role="status" aria-live="polite" aria-busy={loadState.loading}>
            {count(rows.length)} {rows.length === 1 ? "lead" : "leads"}
            {loadState.loading ? ` · loading ${count(loadState.loaded)}…` : ""}
            {loadState.complete && loadState.loaded >= MAX_ROWS ? ` · first ${count(MAX_ROWS)} shown` : ""}
          </span>
        }
      />
      <form class="filters" role="search" aria-label="Filter leads" onSubmit={(e) => e.preventDefault()}>
        <label class="field field-grow">
          <span class="sr-only">Search name, e-mail or phone</span>
          <input type="search" placeholder="Search name, e-mail, phone" value={f.q} onInput={(e) => set("q", (e.target as HTMLInputElement).value)} data-testid="lead-search" />
        </label>
        <label class="field">
          <span class="sr-only">Status</span>
          <select value={f.status} onChange={(e) => set("status", (e.target as HTMLSelectElement).value)}>
            <option value="">Any status</option>
            {["open", "won", "lost", "abandoned"].map((s) => <option value={s}>{s[0].toUpperCase() + s.slice(1)}</option>)}
          </select>
        </label>
        <label class="field">
          <span class="sr-only">Stage</span>
          <select value={f.stage} onChange={(e) => set("stage", (e.target as HTMLSelectElement).value)}>
            <option value="">Any stage</option>
            {stages.map((s) => <option value={s}>{s}</option>)}
          </select>
        </label>
        <label class="field">
          <span class="sr-only">Source</span>
          <select value={f.source} onChange={(e) => set("source", (e.target as HTMLSelectElement).value)}>
            <option value="">Any source</option>
            {SOURCES.map((s) => <option value={s}>{s}</option>)}
          </select>
        </label>
        <label class="field">
          <span class="sr-only">Agent</span>
          <select value={f.agent_id == null ? "" : String(f.agent_id)} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; set("agent_id", v ? Number(v) : null); }}>
            <option value="">Any agent</option>
            {agents.map((a) => <option value={String(a.id)}>{a.name}</option>)}
          </select>
        </label>
        <label class="field">
          <span class="sr-only">Minimum score</span>
          <select value={f.score_min == null ? "" : String(f.score_min)} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; set("score_min", v ? Number(v) : null); }}>
            <option value="">Any score</option>
            <option value="0.4">Score ≥ 40</option>
            <option value="0.7">Hot (≥ 70)</option>
          </select>
        </label>
        {filtered && (
          <button type="button" class="btn btn-ghost btn-small" onClick={() => setF({ q: "", status: "", stage: "", source: "", agent_id: null, score_min: null })}>
            Clear
          </button>
        )}
      </form>
      {loadState.error && <ErrorNote error={new Error(loadState.error)} retry={reloadLeads} />}
      <div class="lt" role="table" aria-label="Leads" aria-rowcount={rows.length + 1} data-testid="leads-table" data-generation={loadState.generation} data-loading={loadState.loading ? "1" : "0"}>
        <div class="lt-head" role="rowgroup">
          <div class="lt-row lt-header" role="row" aria-rowindex={1}>
            <div role="columnheader" class="c-name" aria-sort={sort === "name" ? "ascending" : "none"}>{sortBtn("Lead", "name", "name")}</div>
            <div role="columnheader" class="c-score" aria-sort={sort.startsWith("score") ? (sort === "score_desc" ? "descending" : "ascending") : "none"}>{sortBtn("Score", "score_desc", "score_asc")}</div>
            <div role="columnheader" class="c-status">Status</div>
            <div role="columnheader" class="c-agent">Agent</div>
            <div role="columnheader" class="c-source">Source</div>
            <div role="columnheader" class="c-budget">Budget</div>
            <div role="columnheader" class="c-created" aria-sort={sort === "newest" ? "descending" : sort === "oldest" ? "ascending" : "none"}>{sortBtn("Created", "newest", "oldest")}</div>
          </div>
        </div>
        <VirtualRows rows={rows} render={(l, i) => <LeadRow key={l.id} l={l} index={i} agents={agents} />} empty={
          loadState.loading ? "Loading leads…" : filtered ? "No lead matches these filters." : "No leads yet. New leads appear here the moment they arrive."
        } />
      </div>
    </div>
  );
}

function LeadRow(p: { l: Lead; index: number; agents: ReturnType<typeof useAgents> }) {
  const l = p.l;
  const t = table.touched.get(l.id);
  const fresh = t !== undefined && Date.now() - t < 4000;
  const name = leadName(l);
  return (
    <a
      href={"/leads/" + l.id}
      onClick={linkClick as any}
      class={"lt-row" + (fresh ? " flash" : "")}
      role="row"
      aria-rowindex={p.index + 2}
      aria-label={`${name}, score ${score100(l.score)}, ${l.status || "open"}`}
      style={{ transform: `translateY(${p.index * ROW}px)` }}
      data-lead-id={l.id}
    >
      <div role="cell" class="c-name">
        <span class="lead-name">{name}</span>
        <span class="lead-sub">{l.email || phone(l.phone as string)}</span>
      </div>
      <div role="cell" class="c-score"><ScorePill score={l.score} /></div>
      <div role="cell" class="c-status">
        <Badge tone={statusTone(l.status)}>{l.status || "open"}</Badge>
        {l.stage && <span class="stage">{l.stage}</span>}
      </div>
      <div role="cell" class="c-agent">{agentName(p.agents, l.agent_id)}</div>
      <div role="cell" class="c-source">{l.source || "—"}</div>
      <div role="cell" class="c-budget">{moneyRange(l.budget_min as number, l.budget_max as number)}</div>
      <div role="cell" class="c-created">{ago(l.created_at)}</div>
    </a>
  );
}

function VirtualRows(p: { rows: Lead[]; render: (l: Lead, i: number) => any; empty: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [h, setH] = useState(800);
  useLayoutEffect(() => {
    const el = ref.current!;
    let raf = 0;
    const on = () => {
      cancelAnimationFrame(raf);
      raf = requestAnimationFrame(() => setTop(el.scrollTop));
    };
    el.addEventListener("scroll", on, { passive: true });
    const ro = new ResizeObserver(() => setH(el.clientHeight || 800));
    ro.observe(el);
    return () => {
      el.removeEventListener("scroll", on);
      ro.disconnect();
      cancelAnimationFrame(raf);
    };
  }, []);
  const n = p.rows.length;
  const start = Math.max(0, Math.floor(top / ROW) - 10);
  const end = Math.min(n, Math.ceil((top + h) / ROW) + 10);
  const out = [];
  for (let i = start; i < end; i++) out.push(p.render(p.rows[i], i));
  return (
    <div class="lt-body" ref={ref} role="rowgroup" tabIndex={-1}>
      {n === 0 ? <div class="empty">{p.empty}</div> : <div class="lt-spacer" style={{ height: n * ROW + "px" }}>{out}</div>}
    </div>
  );
}
