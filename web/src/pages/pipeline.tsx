// Pipeline: how leads move (stage, outcome, the funnel) and how fast they
// hear back (speed to lead), for a date range, an agent and a source. The
// server counts (GET /v1/reports/pipeline); this page only draws, so it
// costs the same with 100 leads or 100,000.
import { useMemo } from "preact/hooks";
import { api } from "../api";
import { useAgents } from "../agents";
import { ChartView } from "../chartview";
import { count, pct } from "../format";
import {
  bucketColors, dailySeries, emptyFilters, filtersFromQuery, filtersToQuery, funnelSeries, msShort, rangeProblem,
  type PipelineFilters, type PipelineReport,
} from "../pipeline";
import { navigate, useLocation } from "../router";
import { useSession } from "../state";
import { Card, Empty, ErrorNote, Loading, PageHead, Stat, useAsync } from "../ui";

const SOURCES = ["zillow", "realtor.com", "facebook_ads", "open_house", "referral", "website", "ghl"];

export function PipelinePage() {
  const loc = useLocation();
  const session = useSession();
  const isAgent = session?.user.role === "agent";
  const agents = useAgents();
  const f = filtersFromQuery(loc.query);
  const qs = filtersToQuery(f);
  const problem = rangeProblem(f);
  const rep = useAsync<PipelineReport | null>(() => (problem ? Promise.resolve(null) : api<PipelineReport>("/v1/reports/pipeline" + qs)), [qs, problem]);
  const set = (k: keyof PipelineFilters, v: string | number | null) => navigate("/pipeline" + filtersToQuery({ ...f, [k]: v } as PipelineFilters), true);
  const r = rep.data;
  const sources = useMemo(() => {
    const s = new Set(SOURCES);
    for (const x of r?.speed_to_lead.by_source || []) if (x.source) s.add(x.source);
    if (f.source) s.add(f.source);
    return [...s].sort();
  }, [r, f.source]);

  const funnelCfg = useMemo(() => {
    if (!r) return null;
    const s = funnelSeries(r);
    return {
      type: "bar" as const,
      data: { labels: s.labels, datasets: [{ label: "leads", data: s.counts, backgroundColor: "#3b5bdb", borderRadius: 4 }] },
      options: { indexAxis: "y" as const, plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: (c: any) => s.notes[c.dataIndex] || "" } } } },
    };
  }, [r]);
  const bucketCfg = useMemo(() => {
    if (!r) return null;
    const b = r.speed_to_lead.overall.buckets;
    return {
      type: "bar" as const,
      data: { labels: b.map((x) => x.label), datasets: [{ label: "leads", data: b.map((x) => x.leads), backgroundColor: bucketColors(b), borderRadius: 4 }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { title: { display: true, text: "leads" } } } },
    };
  }, [r]);
  const dailyCfg = useMemo(() => {
    if (!r) return null;
    const d = dailySeries(r);
    return {
      type: "bar" as const,
      data: {
        labels: d.labels,
        datasets: [
          { type: "bar" as const, label: "leads created", data: d.created, backgroundColor: "#c5d0fa", yAxisID: "y", order: 2 },
          { type: "bar" as const, label: "first touch within 5 min", data: d.fast, backgroundColor: "#1f9d6b", yAxisID: "y", order: 1 },
          { type: "line" as const, label: "% within 5 min", data: d.rate, borderColor: "#e0a526", backgroundColor: "#e0a526", yAxisID: "y1", spanGaps: false, pointRadius: 2, order: 0 },
        ],
      },
      options: {
        scales: {
          x: { stacked: false, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
          y: { beginAtZero: true, title: { display: true, text: "leads" } },
          y1: { position: "right" as const, min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "% within 5 min" } },
        },
      },
    };
  }, [r]);

  const o = r?.speed_to_lead.overall;
  const closed = r ? r.by_status.won + r.by_status.lost : 0;
  return (
    <div class="page">
      <PageHead title="Pipeline" subtitle={r ? `Leads created ${r.daily[0]?.date} – ${r.daily[r.daily.length - 1]?.date} (UTC)` : "Where leads are, and how fast they hear back"} />
      <form class="filters" aria-label="Filter the pipeline" onSubmit={(e) => e.preventDefault()}>
        <label class="field">
          <span>From</span>
          <input type="date" value={f.from} onChange={(e) => set("from", (e.target as HTMLInputElement).value)} data-testid="pipeline-from" />
        </label>
        <label class="field">
          <span>To</span>
          <input type="date" value={f.to} onChange={(e) => set("to", (e.target as HTMLInputElement).value)} data-testid="pipeline-to" />
        </label>
        {!isAgent && (
          <label class="field">
            <span>Agent</span>
            <select value={f.agent_id == null ? "" : String(f.agent_id)} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; set("agent_id", v ? Number(v) : null); }} data-testid="pipeline-agent">
              <option value="">Every agent</option>
              {agents.map((a) => <option value={String(a.id)}>{a.name}</option>)}
            </select>
          </label>
        )}
        <label class="field">
          <span>Source</span>
          <select value={f.source} onChange={(e) => set("source", (e.target as HTMLSelectElement).value)} data-testid="pipeline-source">
            <option value="">Every source</option>
            {sources.map((s) => <option value={s}>{s}</option>)}
          </select>
        </label>
        {qs && <button type="button" class="btn btn-ghost btn-small" onClick={() => navigate("/pipeline" + filtersToQuery(emptyFilters), true)}>Reset</button>}
      </form>
      {problem ? <ErrorNote error={new Error(problem)} /> : rep.error && !r ? <ErrorNote error={rep.error} retry={rep.reload} /> : !r || !o ? <Loading /> : (
        <div class="grid">
          <div class="stats stats-4 card" data-testid="pipeline-stats">
            <Stat label="Leads" value={count(r.leads)} hint={`${count(r.by_status.open)} open`} />
            <Stat label="Win rate" value={closed ? pct(r.win_rate) : "—"} hint={`${r.by_status.won} won · ${r.by_status.lost} lost · ${r.by_status.abandoned} abandoned`} />
            <Stat label="Speed to lead (median)" value={msShort(o.p50_ms)} hint={`p90 ${msShort(o.p90_ms)}`} tone={o.p50_ms != null && o.p50_ms <= 300000 ? "good" : "neutral"} />
            <Stat label="Within 5 min" value={pct(o.within_5m_rate)} hint={`${count(o.never)} never contacted`} />
          </div>
          <div class="grid grid-2">
            <Card title="Funnel" subtitle="Created → contacted (an outbound message or call) → appointment → won">
              {r.leads ? <ChartView config={funnelCfg as any} height={200} label={"Funnel: " + r.funnel.map((s) => `${s.step} ${s.leads}`).join(", ")} testid="funnel-chart" /> : <Empty>No leads in this range.</Empty>}
              {r.leads > 0 && (
                <p class="muted small">{r.funnel.slice(1).map((s, i) => `${pct(s.conversion)} ${r.funnel[i].step} → ${s.step}`).join(" · ")}</p>
              )}
            </Card>
            <Card title="Speed to lead" subtitle="Lead created → first outbound message or call">
              {r.leads ? <ChartView config={bucketCfg as any} height={200} label={"Speed to lead: " + o.buckets.map((b) => `${b.label} ${b.leads}`).join(", ")} testid="speed-chart" /> : <Empty>No leads in this range.</Empty>}
            </Card>
          </div>
          <Card title="Every day" subtitle="Leads created, and first touched within 5 minutes">
            <ChartView config={dailyCfg as any} height={220} label={`Daily: ${r.daily.length} days, ${r.leads} leads, ${o.within_5m} first touched within 5 minutes`} testid="daily-chart" />
          </Card>
          <div class="grid grid-2">
            <Card title="By stage">
              {r.by_stage.length ? (
                <div class="table-wrap"><table class="table" data-testid="stage-table">
                  <thead><tr><th>Stage</th><th class="num">Leads</th><th class="num">Share</th></tr></thead>
                  <tbody>{r.by_stage.map((s) => <tr><td>{s.stage}</td><td class="num">{count(s.leads)}</td><td class="num">{pct(s.leads / r.leads)}</td></tr>)}</tbody>
                </table></div>
              ) : <Empty>No leads in this range.</Empty>}
            </Card>
            <Card title="By source">
              {r.speed_to_lead.by_source.length ? (
                <div class="table-wrap"><table class="table" data-testid="source-table">
                  <thead><tr><th>Source</th><th class="num">Leads</th><th class="num">Median</th><th class="num">≤ 5 min</th><th class="num">Win rate</th></tr></thead>
                  <tbody>{r.speed_to_lead.by_source.map((s) => (
                    <tr><td>{s.source ?? "(none)"}</td><td class="num">{count(s.leads)}</td><td class="num">{msShort(s.p50_ms)}</td><td class="num">{pct(s.within_5m_rate)}</td><td class="num">{pct(s.win_rate)}</td></tr>
                  ))}</tbody>
                </table></div>
              ) : <Empty>No leads in this range.</Empty>}
            </Card>
          </div>
          <Card title="By agent" subtitle={isAgent ? "Your leads" : "Speed to lead and outcomes per agent"}>
            {r.speed_to_lead.by_agent.length ? (
              <div class="table-wrap"><table class="table" data-testid="agent-table">
                <thead><tr><th>Agent</th><th class="num">Leads</th><th class="num">Median</th><th class="num">p90</th><th class="num">≤ 5 min</th><th class="num">Never</th><th class="num">Win rate</th></tr></thead>
                <tbody>{r.speed_to_lead.by_agent.map((a) => (
                  <tr><td>{a.name ?? "Agent #" + a.agent_id}</td><td class="num">{count(a.leads)}</td><td class="num">{msShort(a.p50_ms)}</td><td class="num">{msShort(a.p90_ms)}</td><td class="num">{pct(a.within_5m_rate)}</td><td class="num">{count(a.never)}</td><td class="num">{pct(a.win_rate)}</td></tr>
                ))}</tbody>
              </table></div>
            ) : <Empty>No leads in this range.</Empty>}
          </Card>
        </div>
      )}
    </div>
  );
}
