import { describe, expect, it } from "vitest";
import {
  bucketColors, dailySeries, filtersFromQuery, filtersToQuery, funnelSeries, msShort, rangeProblem, type PipelineReport,
} from "../../src/pipeline";

function report(over: Partial<PipelineReport> = {}): PipelineReport {
  const buckets = ["lt_1m", "1_5m", "5_15m", "15_60m", "1_24h", "gt_24h", "never"].map((b, i) => ({ bucket: b, label: b, leads: i }));
  const speed = { leads: 9, touched: 7, never: 2, within_5m: 3, within_5m_rate: 3 / 9, p50_ms: 600000, p90_ms: 108000000, buckets };
  return {
    range: { from: 0, to: 3 * 86400000, days: 3, timezone: "UTC" },
    filters: { agent_id: null, source: null },
    leads: 9,
    by_stage: [{ stage: "new", leads: 9 }],
    stages_truncated: false,
    by_status: { open: 4, won: 2, lost: 2, abandoned: 1 },
    funnel: [
      { step: "created", leads: 9, conversion: null, of_created: 1 },
      { step: "contacted", leads: 7, conversion: 7 / 9, of_created: 7 / 9 },
      { step: "appointment", leads: 2, conversion: 2 / 7, of_created: 2 / 9 },
      { step: "won", leads: 2, conversion: 1, of_created: 2 / 9 },
    ],
    win_rate: 0.5,
    speed_to_lead: { overall: speed, by_source: [], sources_truncated: false, by_agent: [] },
    daily: [
      { date: "2026-10-31", start: 0, created: 4, touched_5m: 1 },
      { date: "2026-11-01", start: 86400000, created: 0, touched_5m: 0 },
      { date: "2026-11-02", start: 172800000, created: 5, touched_5m: 2 },
    ],
    ...over,
  };
}

describe("pipeline filters", () => {
  it("round-trips through the URL and drops bad values", () => {
    const f = filtersFromQuery(new URLSearchParams("from=2026-11-01&to=2026-11-30&agent_id=7&source=web"));
    expect(f).toEqual({ from: "2026-11-01", to: "2026-11-30", agent_id: 7, source: "web" });
    expect(filtersToQuery(f)).toBe("?from=2026-11-01&to=2026-11-30&agent_id=7&source=web");
    expect(filtersFromQuery(new URLSearchParams(filtersToQuery(f).slice(1)))).toEqual(f);
    const bad = filtersFromQuery(new URLSearchParams("from=yesterday&to=2026-1-5&agent_id=0&source=" + "x".repeat(300)));
    expect(bad).toEqual({ from: "", to: "", agent_id: null, source: "x".repeat(200) });
    expect(filtersFromQuery(new URLSearchParams("agent_id=-3")).agent_id).toBeNull();
    expect(filtersFromQuery(new URLSearchParams("agent_id=99999999999999999999")).agent_id).toBeNull();
    expect(filtersToQuery({ from: "", to: "", agent_id: null, source: "" })).toBe("");
    expect(filtersToQuery({ from: "", to: "", agent_id: null, source: "open house & co" })).toBe("?source=open+house+%26+co");
  });
  it("says what the server would refuse", () => {
    expect(rangeProblem({ from: "2026-11-02", to: "2026-11-01", agent_id: null, source: "" })).toMatch(/before/);
    expect(rangeProblem({ from: "2025-01-01", to: "2026-01-01", agent_id: null, source: "" })).toBeNull(); // 366 days
    expect(rangeProblem({ from: "2025-01-01", to: "2026-01-02", agent_id: null, source: "" })).toMatch(/366/);
    expect(rangeProblem({ from: "2024-01-01", to: "2024-12-31", agent_id: null, source: "" })).toBeNull(); // leap year
    expect(rangeProblem({ from: "2026-11-01", to: "", agent_id: null, source: "" })).toBeNull();
  });
});

describe("pipeline figures", () => {
  it("formats delays", () => {
    expect(msShort(null)).toBe("—");
    expect(msShort(0)).toBe("0 s");
    expect(msShort(30000)).toBe("30 s");
    expect(msShort(59400)).toBe("59 s");
    expect(msShort(60000)).toBe("1 min");
    expect(msShort(270000)).toBe("4.5 min");
    expect(msShort(600000)).toBe("10 min");
    expect(msShort(3540000)).toBe("59 min");
    expect(msShort(7200000)).toBe("2 h");
    expect(msShort(108000000)).toBe("1.3 d");
  });
  it("builds the funnel with step-to-step notes", () => {
    const s = funnelSeries(report());
    expect(s.labels).toEqual(["Created", "Contacted", "Appointment", "Won"]);
    expect(s.counts).toEqual([9, 7, 2, 2]);
    expect(s.notes).toEqual(["", "78% of created", "29% of contacted", "100% of appointment"]);
    const empty = report({ funnel: report().funnel.map((x) => ({ ...x, leads: 0, conversion: null })) });
    expect(funnelSeries(empty).notes).toEqual(["", "—", "—", "—"]);
  });
  it("colours buckets by how fast", () => {
    expect(bucketColors(report().speed_to_lead.overall.buckets)).toEqual(
      ["#1f9d6b", "#1f9d6b", "#e0a526", "#e0a526", "#d64545", "#d64545", "#c9ced8"]);
  });
  it("gives the daily series, breaking the rate line on empty days", () => {
    const d = dailySeries(report());
    expect(d.labels).toEqual(["Oct 31", "Nov 1", "Nov 2"]);
    expect(d.created).toEqual([4, 0, 5]);
    expect(d.fast).toEqual([1, 0, 2]);
    expect(d.rate).toEqual([25, null, 40]);
    const years = dailySeries(report({ daily: [{ date: "2025-12-31", start: 0, created: 3, touched_5m: 1 }, { date: "2026-01-01", start: 1, created: 0, touched_5m: 0 }] }));
    expect(years.labels).toEqual(["Dec 31, 2025", "Jan 1, 2026"]);
    expect(years.rate).toEqual([33.3, null]);
  });
});
