// The pipeline page's data: the query for GET /v1/reports/pipeline from the
// page's filters, and the report turned into what the charts draw. The
// server counts (README "Reports"); nothing here aggregates leads. Pure
// functions, unit-tested in test/unit/pipeline.test.ts.

export interface Bucket {
  bucket: string;
  label: string;
  leads: number;
}

export interface Speed {
  leads: number;
  touched: number;
  never: number;
  within_5m: number;
  within_5m_rate: number | null;
  p50_ms: number | null;
  p90_ms: number | null;
  buckets: Bucket[];
}

export interface PipelineReport {
  range: { from: number; to: number; days: number; timezone: string };
  filters: { agent_id: number | null; source: string | null };
  leads: number;
  by_stage: { stage: string; leads: number }[];
  stages_truncated: boolean;
  by_status: { open: number; won: number; lost: number; abandoned: number };
  funnel: { step: string; leads: number; conversion: number | null; of_created: number | null }[];
  win_rate: number | null;
  speed_to_lead: {
    overall: Speed;
    by_source: (Speed & { source: string | null; won: number; win_rate: number | null })[];
    sources_truncated: boolean;
    by_agent: (Speed & { agent_id: number | null; name: string | null; won: number; win_rate: number | null })[];
  };
  daily: { date: string; start: number; created: number; touched_5m: number }[];
}

export interface PipelineFilters {
  from: string; // YYYY-MM-DD or "" (the server's default: the last 30 days)
  to: string;
  agent_id: number | null;
  source: string;
}

export const emptyFilters: PipelineFilters = { from: "", to: "", agent_id: null, source: "" };

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** The page's filters from its URL (?from=&to=&agent_id=&source=); bad values are dropped. */
export function filtersFromQuery(q: URLSearchParams): PipelineFilters {
  const from = q.get("from") || "", to = q.get("to") || "", ag = q.get("agent_id") || "";
  const n = Number(ag);
  return {
    from: DAY_RE.test(from) ? from : "",
    to: DAY_RE.test(to) ? to : "",
    agent_id: /^[1-9]\d{0,17}$/.test(ag) && Number.isSafeInteger(n) ? n : null,
    source: (q.get("source") || "").slice(0, 200),
  };
}

/** "?from=…&…" for both the page's URL and the API ("" when no filter is set). */
export function filtersToQuery(f: PipelineFilters): string {
  const q = new URLSearchParams();
  if (f.from) q.set("from", f.from);
  if (f.to) q.set("to", f.to);
  if (f.agent_id != null) q.set("agent_id", String(f.agent_id));
  if (f.source) q.set("source", f.source);
  const s = q.toString();
  return s ? "?" + s : "";
}

/** A range the server refuses (366 days at most, from ≤ to), said before asking; null when fine. */
export function rangeProblem(f: PipelineFilters): string | null {
  if (f.from && f.to) {
    const a = Date.parse(f.from + "T00:00:00Z"), b = Date.parse(f.to + "T00:00:00Z");
    if (!Number.isFinite(a) || !Number.isFinite(b)) return "Dates must be YYYY-MM-DD.";
    if (b < a) return "The end date is before the start date.";
    if ((b - a) / 86400000 + 1 > 366) return "The range is at most 366 days.";
  }
  return null;
}

/** Milliseconds as the speed-to-lead figures read: "40 s", "4.5 min", "2.3 h", "3 d"; "—" for none. */
export function msShort(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = ms / 1000;
  if (s < 60) return Math.round(s) + " s";
  const m = s / 60;
  if (m < 60) return (m < 10 ? one(m) : String(Math.round(m))) + " min";
  if (m < 1440) return one(m / 60) + " h";
  return one(m / 1440) + " d";
}

function one(x: number): string {
  const s = x.toFixed(1);
  return s.endsWith(".0") ? s.slice(0, -2) : s;
}

/** The funnel's bars and, for each step after the first, "62% of contacted" style notes. */
export function funnelSeries(r: PipelineReport): { labels: string[]; counts: number[]; notes: string[] } {
  const names: Record<string, string> = { created: "Created", contacted: "Contacted", appointment: "Appointment", won: "Won" };
  return {
    labels: r.funnel.map((s) => names[s.step] || s.step),
    counts: r.funnel.map((s) => s.leads),
    notes: r.funnel.map((s, i) =>
      i === 0 ? "" : s.conversion == null ? "—" : Math.round(s.conversion * 100) + "% of " + (names[r.funnel[i - 1].step] || "").toLowerCase()),
  };
}

/** Bucket colours: green within 5 minutes, amber within the hour, red later, grey never. */
export function bucketColors(b: Bucket[]): string[] {
  return b.map((x) =>
    x.bucket === "never" ? "#c9ced8" : x.bucket === "lt_1m" || x.bucket === "1_5m" ? "#1f9d6b" :
      x.bucket === "5_15m" || x.bucket === "15_60m" ? "#e0a526" : "#d64545");
}

/**
 * The daily chart: a label per day ("Nov 3"; "Nov 3, 2025" when the range
 * spans years), leads created, and the share first touched within 5 minutes
 * (null on a day without leads, so the line breaks instead of dropping to 0).
 */
export function dailySeries(r: PipelineReport): { labels: string[]; created: number[]; fast: number[]; rate: (number | null)[] } {
  const years = new Set(r.daily.map((d) => d.date.slice(0, 4)));
  const mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  return {
    labels: r.daily.map((d) => {
      const [y, m, day] = d.date.split("-");
      return mon[Number(m) - 1] + " " + Number(day) + (years.size > 1 ? ", " + y : "");
    }),
    created: r.daily.map((d) => d.created),
    fast: r.daily.map((d) => d.touched_5m),
    rate: r.daily.map((d) => (d.created ? Math.round((d.touched_5m / d.created) * 1000) / 10 : null)),
  };
}
