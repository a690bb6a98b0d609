// System: liveness and readiness, a few key metrics from /metrics, the
// connected realtime clients, and the latest events of the log.
import { useEffect, useState } from "preact/hooks";
import { api, publicGet } from "../api";
import { bytes, count, duration } from "../format";
import { can } from "../roles";
import { feedInfo, useSession } from "../state";
import { Badge, Card, ErrorNote, Loading, PageHead, Stat, useAsync } from "../ui";

/** Sums the samples of a metric family in Prometheus text, optionally only
 * those whose labels contain `where`. */
export function metricSum(text: string, name: string, where = ""): number | null {
  let sum: number | null = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (where && !rest.includes(where)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

export function SystemPage() {
  const s = useSession()!;
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((x) => x + 1), 5000);
    return () => clearInterval(t);
  }, []);
  const health = useAsync(() => publicGet<any>("/health"), [tick]);
  const ready = useAsync(() => publicGet<any>("/ready"), [tick]);
  const metrics = useAsync(() => publicGet<string>("/metrics"), [tick]);
  const events = useAsync<any>(async () => {
    if (!can(s.user.role, "events.read")) return null;
    const first = await api("/v1/events?limit=1");
    const after = Math.max(0, (first.last_seq || 0) - 15);
    return api(`/v1/events?after=${after}&limit=15`);
  }, [tick]);
  const h = health.data?.body, r = ready.data?.body, m = typeof metrics.data?.body === "string" ? metrics.data.body : "";
  const fi = feedInfo();
  return (
    <div class="page">
      <PageHead title="System" subtitle="Health of this ehub node (refreshes every 5 s)" />
      <div class="grid grid-2">
        <Card title="Status">
          {!h && health.error ? <ErrorNote error={health.error} /> : !h ? <Loading /> : (
            <div class="stats stats-4">
              <Stat label="Liveness" value={<Badge tone={h.status === "healthy" ? "good" : "bad"}>{h.status}</Badge>} hint={"v" + h.version} />
              <Stat label="Readiness" value={r ? <Badge tone={r.status === "ready" ? "good" : "bad"}>{r.status}</Badge> : "…"} hint={r ? `${r.storage?.backend} schema ${r.storage?.schema_version}/${r.storage?.schema_latest}` : ""} />
              <Stat label="Uptime" value={duration(h.uptime_seconds)} />
              <Stat label="Bus" value={r?.bus ? <Badge tone={r.bus.connected ? "good" : "bad"}>{r.bus.kind}</Badge> : "…"} hint={r?.bus?.connected ? "connected" : "disconnected"} />
            </div>
          )}
        </Card>
        <Card title="Connected clients">
          {!h ? <Loading /> : (
            <div class="stats stats-4">
              <Stat label="Realtime clients" value={count(h.realtime_connections)} hint="WebSocket + SSE feeds" />
              <Stat label="WebSockets" value={count(h.websocket_connections)} />
              <Stat label="Connections" value={count(h.connections)} />
              <Stat label="This tab" value={fi.lastSeq == null ? "—" : "seq " + fi.lastSeq} hint={`${fi.reconnects} reconnects`} />
            </div>
          )}
        </Card>
        <Card title="Key metrics" subtitle="From /metrics">
          {!m ? <Loading /> : (
            <div class="stats stats-4">
              <Stat label="Requests" value={count(metricSum(m, "ehub_http_requests_total"))} />
              <Stat label="5xx" value={count(metricSum(m, "ehub_http_requests_total", 'status="5'))} />
              <Stat label="Events delivered" value={count(metricSum(m, "ehub_realtime_messages_total", 'direction="out"'))} />
              <Stat label="Memory" value={bytes(metricSum(m, "process_resident_memory_bytes"))} />
              <Stat label="Pool queue" value={count(metricSum(m, "ehub_threadpool_queue_depth"))} />
              <Stat label="Store errors" value={count(metricSum(m, "ehub_store_errors_total"))} />
              <Stat label="Auth failures" value={count(metricSum(m, "ehub_auth_failures_total"))} />
              <Stat label="Open files" value={count(metricSum(m, "process_open_fds"))} />
            </div>
          )}
        </Card>
        {can(s.user.role, "events.read") && (
          <Card title="Latest events" subtitle="The tenant's event log">
            {!events.data && events.error ? <ErrorNote error={events.error} /> : !events.data ? <Loading /> : (
              <ol class="events">
                {[...(events.data.items || [])].reverse().map((e: any) => (
                  <li><span class="ev-seq">#{e.seq}</span><code>{e.type}</code><span class="muted small">{e.time?.slice(11, 19)}</span></li>
                ))}
              </ol>
            )}
          </Card>
        )}
      </div>
    </div>
  );
}
