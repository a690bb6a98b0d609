// Pipeline: how leads move (by stage and outcome) and how fast agents
// answer. No route aggregates these, so the funnel counts the tenant's
// leads here (GET /v1/leads, every page) and speed to lead comes from each
// agent's performance (median first response).
import { useMemo } from "preact/hooks";
import { api, listAll } from "../api";
import { loadAgents } from "../agents";
import { ChartView } from "../chartview";
import { count, pct } from "../format";
import type { Lead } from "../merge";
import { Card, Empty, ErrorNote, Loading, PageHead, Stat, useAsync } from "../ui";

const STAGE_ORDER = ["new", "contacted", "qualified", "showing", "appointment", "offer", "under_contract", "closed"];

export function PipelinePage() {
  const leads = useAsync(() => listAll<Lead>("/v1/leads", 20000), []);
  const perf = useAsync(async () => {
    const agents = await loadAgents();
    const p = await Promise.all(agents.map((g) => api(`/v1/agents/${g.id}/performance`).catch(() => null)));
    return agents.map((g, i) => ({ name: g.name, p: p[i] as any })).filter((x) => x.p);
  }, []);
  const stats = useMemo(() => {
    const ls = leads.data || [];
    const stages = new Map<string, number>();
    const status = { open: 0, won: 0, lost: 0, abandoned: 0 } as Record<string, number>;
    let hot = 0;
    for (const l of ls) {
      const st = l.stage || "new";
      stages.set(st, (stages.get(st) || 0) + 1);
      status[l.status || "open"] = (status[l.status || "open"] || 0) + 1;
      if ((l.score ?? 0) >= 0.7) hot++;
    }
    const names = [...stages.keys()].sort((a, b) => {
      const x = STAGE_ORDER.indexOf(a), y = STAGE_ORDER.indexOf(b);
      return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || a.localeCompare(b);
    });
    return { total: ls.length, stages: names.map((n) => [n, stages.get(n)!] as [string, number]), status, hot };
  }, [leads.data]);
  const funnelCfg = useMemo(() => ({
    type: "bar" as const,
    data: {
      labels: [...stats.stages.map(([n]) => n), "won"],
      datasets: [{ label: "leads", data: [...stats.stages.map(([, c]) => c), stats.status.won || 0], backgroundColor: "#3b5bdb", borderRadius: 4 }],
    },
    options: { indexAxis: "y" as const, plugins: { legend: { display: false } } },
  }), [stats]);
  const speedCfg = useMemo(() => {
    const rows = (perf.data || []).map((x) => ({ name: x.name, m: x.p.response_time?.median_minutes }));
    return {
      type: "bar" as const,
      data: {
        labels: rows.map((r) => r.name),
        datasets: [{ label: "median minutes to reply", data: rows.map((r) => r.m ?? 0), backgroundColor: rows.map((r) => (r.m == null ? "#c9ced8" : r.m <= 5 ? "#1f9d6b" : r.m <= 60 ? "#e0a526" : "#d64545")), borderRadius: 4 }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { title: { display: true, text: "minutes" } } } },
    };
  }, [perf.data]);
  const closed = (stats.status.won || 0) + (stats.status.lost || 0);
  return (
    <div class="page">
      <PageHead title="Pipeline" subtitle="Where leads are, and how fast they hear back" />
      {leads.error && !leads.data ? <ErrorNote error={leads.error} retry={leads.reload} /> : !leads.data ? <Loading /> : (
        <>
          <div class="stats stats-4 card">
            <Stat label="Leads" value={count(stats.total)} />
            <Stat label="Open" value={count(stats.status.open || 0)} />
            <Stat label="Hot (≥ 70)" value={count(stats.hot)} tone="hot" />
            <Stat label="Win rate" value={closed ? pct((stats.status.won || 0) / closed) : "—"} hint={`${stats.status.won || 0} won · ${stats.status.lost || 0} lost`} />
          </div>
          <div class="grid grid-2">
            <Card title="Funnel" subtitle="Leads by stage, and won">
              {stats.total ? <ChartView config={funnelCfg as any} height={Math.max(160, stats.stages.length * 36 + 60)} label={"Funnel: " + stats.stages.map(([n, c]) => `${n} ${c}`).join(", ")} testid="funnel-chart" /> : <Empty>No leads yet.</Empty>}
            </Card>
            <Card title="Speed to lead" subtitle="Median minutes from a lead's message to the agent's reply">
              {perf.error && !perf.data ? <ErrorNote error={perf.error} /> : !perf.data ? <Loading /> : !perf.data.length ? <Empty>No agent data for your role.</Empty> : (
                <ChartView config={speedCfg as any} height={220} label={"Speed to lead by agent: " + perf.data.map((x) => `${x.name} ${x.p.response_time?.median_minutes ?? "no replies"}`).join(", ")} testid="speed-chart" />
              )}
            </Card>
          </div>
        </>
      )}
    </div>
  );
}
