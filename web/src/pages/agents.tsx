// Agents board: each agent's load against capacity, response time,
// contact and conversion rates, expected wins from the open pipeline and the
// 30-day conversion forecast with its drivers (GET /v1/agents,
// GET /v1/agents/{id}/performance).
import { api } from "../api";
import { loadAgents, type Agent } from "../agents";
import { count, humanize, pct, signed } from "../format";
import { Badge, Card, Empty, ErrorNote, Loading, Meter, PageHead, Stat, useAsync } from "../ui";

// forecast_30d: expected conversions among the open leads in the next 30
// days, from the tenant's agent_forecast model or the points prior.
interface Forecast {
  horizon_days: number;
  expected_conversions: number;
  open_leads: number;
  kind: "model" | "prior";
  model_version: number | null;
  auc: number | null;
  drivers: { feature: string; effect: number; mean_value?: number | null }[];
}

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
  forecast_30d: Forecast | null;
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
        Expected wins add up the open leads' win probabilities (no time horizon). The 30-day forecast adds up each open lead's chance of being won within 30 days,
        from the team's own history once it is long enough to train on (the model), before that from a points prior; drivers are what moves it most, in conversions.
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
          <Stat label="Expected wins" value={x.pipeline.expected_wins.toFixed(1)} hint="no horizon" />
        </div>
      )}
      {x && <ForecastBlock f={x.forecast_30d} agent={g.name} />}
      {(g.areas || []).length > 0 && <p class="muted small">Areas: {(g.areas || []).join(", ")}</p>}
    </Card>
  );
}

function ForecastBlock(p: { f: Forecast | null; agent: string }) {
  const f = p.f;
  if (!f) return <p class="muted small" data-testid="forecast-30d">No 30-day forecast.</p>;
  const top = [...(f.drivers || [])].sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 3);
  return (
    <div class="forecast" data-testid="forecast-30d">
      <div class="load-label">
        <span>Next {f.horizon_days} days</span>
        <Badge tone={f.kind === "model" ? "good" : "neutral"} title={f.kind === "model" ? `agent_forecast v${f.model_version ?? "?"}${f.auc != null ? ", held-out AUC " + f.auc.toFixed(2) : ""}` : "points prior: not enough history to train yet"}>
          {f.kind === "model" ? `model v${f.model_version ?? "?"}` : "prior"}
        </Badge>
      </div>
      <p class="forecast-value"><strong data-testid="forecast-value">{f.expected_conversions.toFixed(1)}</strong> expected conversions of {count(f.open_leads)} open leads</p>
      {top.length > 0 && (
        <ul class="drivers" aria-label={`What drives ${p.agent}'s forecast`}>
          {top.map((d) => (
            <li><span>{humanize(d.feature)}</span><span class={d.effect >= 0 ? "pos" : "neg"}>{signed(d.effect)}</span></li>
          ))}
        </ul>
      )}
    </div>
  );
}
