// Agents board: each agent's load against capacity, response time,
// contact and conversion rates, and expected wins from the open pipeline
// (GET /v1/agents, GET /v1/agents/{id}/performance).
import { api } from "../api";
import { loadAgents, type Agent } from "../agents";
import { count, pct } from "../format";
import { Badge, Card, Empty, ErrorNote, Loading, Meter, PageHead, Stat, useAsync } from "../ui";

interface Perf {
  agent_id: number;
  leads: number;
  response_time: { median_minutes: number | null; replies: number };
  contact_rate: number | null;
  appointment_rate: number | null;
  conversion: number | null;
  won: number;
  lost: number;
  pipeline: { open_leads: number; expected_wins: number };
  forecast_30d: number | null;
  coaching?: { acceptance_rate: number | null; shown: number };
}

export function AgentsPage() {
  const a = useAsync(async () => {
    const agents = await loadAgents(true);
    const perf = await Promise.all(agents.map((g) => api<Perf>(`/v1/agents/${g.id}/performance`).catch(() => null)));
    return agents.map((g, i) => ({ g, p: perf[i] }));
  }, []);
  return (
    <div class="page">
      <PageHead title="Agents" subtitle="Load against capacity, speed and results" actions={<button class="btn btn-small" type="button" onClick={a.reload}>Refresh</button>} />
      {a.error && !a.data ? <ErrorNote error={a.error} retry={a.reload} /> : !a.data ? <Loading /> : !a.data.length ? <Empty>No agents yet.</Empty> : (
        <div class="grid grid-cards">
          {a.data.map(({ g, p }) => <AgentCard g={g} p={p} />)}
        </div>
      )}
      <p class="muted small note">
        Expected wins add up the open leads' win probabilities (no time horizon); a 30-day forecast needs a horizon model the API does not have yet.
      </p>
    </div>
  );
}

function AgentCard(p: { g: Agent; p: Perf | null }) {
  const g = p.g, x = p.p;
  const open = x?.pipeline.open_leads ?? 0;
  const cap = g.capacity ?? 0;
  return (
    <Card
      title={g.name}
      subtitle={[g.email, (g.languages || []).join("/")].filter(Boolean).join(" · ")}
      actions={<Badge tone={g.active ? "good" : "neutral"}>{g.active ? "active" : "inactive"}</Badge>}
    >
      <div class="load">
        <div class="load-label">
          <span>Load</span>
          <span>{count(open)} / {cap || "∞"} open</span>
        </div>
        <Meter value={open} max={cap || Math.max(open, 1)} label={`${g.name}: ${open} open leads of ${cap} capacity`} />
      </div>
      {!x ? <p class="muted small">Performance not available to your role.</p> : (
        <div class="stats stats-4">
          <Stat label="Median reply" value={x.response_time.median_minutes == null ? "—" : x.response_time.median_minutes.toFixed(1) + " min"} hint={`${x.response_time.replies} replies`} />
          <Stat label="Contacted" value={pct(x.contact_rate)} />
          <Stat label="Conversion" value={pct(x.conversion)} hint={`${x.won} won · ${x.lost} lost`} />
          <Stat label="Expected wins" value={x.pipeline.expected_wins.toFixed(1)} hint={x.forecast_30d == null ? "no 30-day forecast" : `${x.forecast_30d} in 30 d`} />
        </div>
      )}
      {(g.areas || []).length > 0 && <p class="muted small">Areas: {(g.areas || []).join(", ")}</p>}
    </Card>
  );
}
