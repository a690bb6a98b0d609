// The live leads table's state: the rows loaded through GET /v1/leads plus
// every realtime event applied to them, the filters (mirroring the API's)
// and the sort. Plain data in, plain data out: unit-tested without a browser
// (test/unit/merge.test.ts).

export interface Lead {
  id: number;
  first_name?: string | null;
  last_name?: string | null;
  email?: string | null;
  phone?: string | null;
  source?: string | null;
  tags?: string[] | null;
  stage?: string | null;
  status?: string | null;
  agent_id?: number | null;
  score?: number | null;
  version?: number;
  created_at?: number;
  updated_at?: number;
  [k: string]: unknown;
}

/** The API's list filters (GET /v1/leads): the same names and meaning. */
export interface Filters {
  q?: string;
  status?: string;
  stage?: string;
  source?: string;
  agent_id?: number | null;
  score_min?: number | null;
  score_max?: number | null;
  tag?: string;
}

export type SortKey = "score_desc" | "score_asc" | "newest" | "oldest" | "name";

export interface RealtimeEvent {
  seq: number;
  type: string;
  time?: string;
  data: any;
}

/** The query string for GET /v1/leads with these filters. */
export function filterQuery(f: Filters): string {
  const p = new URLSearchParams();
  if (f.q && f.q.trim()) p.set("q", f.q.trim());
  if (f.status) p.set("status", f.status);
  if (f.stage) p.set("stage", f.stage);
  if (f.source) p.set("source", f.source);
  if (f.tag) p.set("tag", f.tag);
  if (f.agent_id != null) p.set("agent_id", String(f.agent_id));
  if (f.score_min != null) p.set("score_min", String(f.score_min));
  if (f.score_max != null) p.set("score_max", String(f.score_max));
  return p.toString();
}

function digits(s: string): string {
  return s.replace(/\D+/g, "");
}

/** Whether a lead passes the filters, as the server would decide. `q`
 * matches name, e-mail or phone text (case-insensitive). */
export function matches(l: Lead, f: Filters): boolean {
  if (f.status && l.status !== f.status) return false;
  if (f.stage && l.stage !== f.stage) return false;
  if (f.source && l.source !== f.source) return false;
  if (f.tag && !(l.tags || []).includes(f.tag)) return false;
  if (f.agent_id != null && l.agent_id !== f.agent_id) return false;
  if (f.score_min != null && (l.score == null || l.score < f.score_min)) return false;
  if (f.score_max != null && (l.score == null || l.score > f.score_max)) return false;
  const q = (f.q || "").trim().toLowerCase();
  if (q) {
    const name = [l.first_name, l.last_name].filter(Boolean).join(" ").toLowerCase();
    const hay = [name, (l.first_name || "").toLowerCase(), (l.last_name || "").toLowerCase(),
      (l.email || "").toLowerCase(), l.phone || ""];
    const hit = hay.some((h) => h.includes(q)) ||
      (digits(q).length >= 3 && digits(l.phone || "").includes(digits(q)));
    if (!hit) return false;
  }
  return true;
}

export function compare(sort: SortKey): (a: Lead, b: Lead) => number {
  const byId = (a: Lead, b: Lead) => b.id - a.id;
  switch (sort) {
    case "score_desc":
    case "score_asc": {
      const dir = sort === "score_desc" ? -1 : 1;
      return (a, b) => {
        const x = a.score, y = b.score;
        if (x == null && y == null) return byId(a, b);
        if (x == null) return 1; // unknown scores last either way
        if (y == null) return -1;
        return x === y ? byId(a, b) : (x < y ? -1 : 1) * dir;
      };
    }
    case "oldest":
      return (a, b) => (a.created_at ?? 0) - (b.created_at ?? 0) || a.id - b.id;
    case "name":
      return (a, b) => {
        const x = `${a.last_name || ""} ${a.first_name || ""}`.trim().toLowerCase();
        const y = `${b.last_name || ""} ${b.first_name || ""}`.trim().toLowerCase();
        return x < y ? -1 : x > y ? 1 : byId(a, b);
      };
    default:
      return (a, b) => (b.created_at ?? 0) - (a.created_at ?? 0) || byId(a, b);
  }
}

/** What an event did to the table (for highlighting and counters). */
export interface Change {
  kind: "added" | "updated" | "removed" | "none";
  id?: number;
}

export class LeadTable {
  private rows = new Map<number, Lead>();
  private order: Lead[] | null = null; // cached sorted, filtered view
  filters: Filters = {};
  sort: SortKey = "score_desc";
  lastSeq = 0; // highest event seq applied
  /** Ids changed by live events, with when (for a brief highlight). */
  touched = new Map<number, number>();

  constructor(filters: Filters = {}, sort: SortKey = "score_desc") {
    this.filters = filters;
    this.sort = sort;
  }

  get size(): number {
    return this.rows.size;
  }

  get(id: number): Lead | undefined {
    return this.rows.get(id);
  }

  // While a snapshot loads page by page, live events keep applying; a page
  // read before an event must not undo it. Lead objects carry a version for
  // that; scores (which do not bump the version) and deletions are
  // remembered here until the next reset.
  private liveScore = new Map<number, number>();
  private deleted = new Set<number>();

  /** Forgets every row: a new snapshot follows through add(). */
  reset(): void {
    this.rows.clear();
    this.liveScore.clear();
    this.deleted.clear();
    this.order = null;
  }

  /** Replaces everything with a fresh page set from the API. */
  load(items: Lead[]): void {
    this.reset();
    this.add(items);
  }

  /** Adds rows from the API (a snapshot's pages); what live events already
   * said wins over them. */
  add(items: Lead[]): void {
    for (const l of items) {
      if (this.deleted.has(l.id)) continue;
      const live = this.liveScore.get(l.id);
      this.upsert(live === undefined ? l : { ...l, score: live });
    }
    this.order = null;
  }

  setFilters(f: Filters): void {
    this.filters = f;
    this.order = null;
  }

  /** Whether a change shows in the current view. */
  visible(id: number): boolean {
    const l = this.rows.get(id);
    return !!l && matches(l, this.filters);
  }

  setSort(s: SortKey): void {
    this.sort = s;
    this.order = null;
  }

  /** The rows to show, filtered and sorted (cached until something changes). */
  view(): Lead[] {
    if (!this.order) {
      this.order = [...this.rows.values()].filter((l) => matches(l, this.filters));
      this.order.sort(compare(this.sort));
    }
    return this.order;
  }

  private upsert(l: Lead): "added" | "updated" | "none" {
    if (!l || typeof l.id !== "number") return "none";
    const cur = this.rows.get(l.id);
    if (cur && cur.version != null && l.version != null && l.version < cur.version) return "none"; // stale
    this.rows.set(l.id, cur ? { ...cur, ...l } : { ...l });
    return cur ? "updated" : "added";
  }

  /** Applies one realtime event (in seq order; older or repeated seqs are
   * ignored, so a replay after a resume cannot apply anything twice). */
  apply(ev: RealtimeEvent): Change {
    if (typeof ev.seq === "number") {
      if (ev.seq <= this.lastSeq) return { kind: "none" };
      this.lastSeq = ev.seq;
    }
    const d = ev.data || {};
    let change: Change = { kind: "none" };
    switch (ev.type) {
      case "lead.created":
      case "lead.updated":
      case "lead.consent_changed": {
        // Every lead seen is kept (the view filters), so a lead that passes
        // the filters only later (a score rising over score_min) shows then.
        const lead = d.lead && typeof d.lead === "object" ? d.lead : d;
        const k = this.upsert(lead);
        if (k !== "none" && typeof lead.score === "number") this.liveScore.set(lead.id, lead.score);
        if (k !== "none") change = { kind: k, id: lead.id };
        break;
      }
      case "lead.assigned":
      case "lead.unassigned": {
        const cur = this.rows.get(d.lead_id);
        if (!cur) break;
        this.rows.set(cur.id, { ...cur, agent_id: ev.type === "lead.assigned" ? d.agent_id : null });
        change = { kind: "updated", id: cur.id };
        break;
      }
      case "lead.scored": {
        if (typeof d.score !== "number") break;
        this.liveScore.set(d.lead_id, d.score);
        const cur = this.rows.get(d.lead_id);
        if (!cur) break;
        this.rows.set(cur.id, { ...cur, score: d.score });
        change = { kind: "updated", id: cur.id };
        break;
      }
      case "lead.deleted":
      case "contact.erased": {
        const id = d.lead_id ?? d.id ?? d.lead?.id;
        if (typeof id !== "number") break;
        this.deleted.add(id);
        if (this.rows.delete(id)) change = { kind: "removed", id };
        break;
      }
    }
    if (change.kind !== "none") {
      this.order = null;
      if (change.id !== undefined && change.kind !== "removed") this.touched.set(change.id, Date.now());
    }
    return change;
  }
}
