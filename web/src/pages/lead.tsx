// One lead: who they are and want, why they score what they score, churn
// risk, what the agent should say next (live), the conversation, matching
// homes, nurture sequences, and the actions the user's role allows.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { agentName, useAgents } from "../agents";
import { api, ApiError, errorText, listAll } from "../api";
import { ChartView } from "../chartview";
import { ago, dateTime, humanize, leadName, money, moneyRange, pct, phone, score100, signed } from "../format";
import type { Lead } from "../merge";
import { navigate } from "../router";
import { can } from "../roles";
import { eventLeadId, feedInfo, useLiveEvents, useSession } from "../state";
import { applyCoachingEvent, draftView, emptyPanel, fromAnswer, type CoachPanel, type Suggestion } from "../coachpanel";
import { Badge, Card, Empty, ErrorNote, Link, Loading, PageHead, ScorePill, Stat, toast, useAsync, useTick, type Tone } from "../ui";
import { statusTone } from "./leads";
import { SMS_MAX_SEGMENTS, smsCounter, smsSegments } from "../sms";

interface Reason { feature: string; value: unknown; effect: number }
interface ScoreInfo { score: number | null; kind: string; model_version: number | null; reasons: Reason[]; threshold: number; hot: boolean; scored_at: number; history: { score: number; kind: string; at: number }[] }

export function LeadPage(p: { id: number }) {
  const id = p.id;
  const s = useSession()!;
  const role = s.user.role;
  const agents = useAgents();
  useTick(15000);
  const lead = useAsync<Lead>(() => api(`/v1/leads/${id}`), [id]);
  const score = useAsync<ScoreInfo>(() => api(`/v1/leads/${id}/score`), [id]);
  const acts = useAsync<any[]>(() => listAll(`/v1/leads/${id}/activities`, 500), [id]);
  const churn = useAsync<any>(() => api(`/v1/predict-churn`, { method: "POST", body: { lead_id: id } }), [id]);
  const matchesA = useAsync<any>(() => api(`/v1/leads/${id}/matches?limit=4`), [id]);
  const enr = useAsync<any>(() => api(`/v1/leads/${id}/enrollments`), [id]);
  const coachOk = can(role, "coaching");
  // The coaching panel (suggestions and the LLM reply draft): the answer,
  // then the feed's coaching.updated events merged by coachpanel.ts.
  const [panel, setPanel] = useState<CoachPanel>(emptyPanel);
  const [coachErr, setCoachErr] = useState<unknown>(null);
  const coachGen = useRef(0);
  const loadCoach = useCallback(() => {
    if (!coachOk) return;
    const g = ++coachGen.current;
    const at = feedInfo().lastSeq ?? 0; // what the answer is at least as new as
    setCoachErr(null);
    api(`/v1/leads/${id}/coaching`, { method: "POST" }).then(
      (a) => g === coachGen.current && setPanel((prev) => fromAnswer(prev, a, at, Date.now())),
      (e) => g === coachGen.current && setCoachErr(e),
    );
  }, [id, coachOk]);
  useEffect(() => {
    setPanel(emptyPanel());
    loadCoach();
  }, [loadCoach]);
  // "Use draft": the text goes into the composer, which the agent reviews and sends
  const [fill, setFill] = useState<Fill | null>(null);

  useLiveEvents(
    (ev) => {
      if (eventLeadId(ev) !== id) return;
      const t = ev.type;
      if (t === "coaching.updated") {
        setPanel((prev) => applyCoachingEvent(prev, ev, Date.now()));
        return;
      }
      if (t === "lead.deleted") {
        toast("This lead was deleted.", "warn");
        navigate("/leads");
        return;
      }
      if (t.startsWith("lead.") && t !== "lead.scored" && t !== "lead.hot") lead.reload();
      if (t === "lead.scored") {
        score.reload();
        lead.reload();
      }
      if (t.startsWith("activity.") || t.startsWith("message.")) {
        acts.reload();
        churn.reload();
        enr.reload();
      }
      if (t.startsWith("nurture.")) enr.reload();
    },
    [id],
  );

  if (lead.error && !lead.data) {
    const nf = lead.error instanceof ApiError && lead.error.status === 404;
    return (
      <div class="page">
        <PageHead title={nf ? "Lead not found" : "Lead"} />
        {nf ? <Empty>This lead does not exist, or was deleted. <Link href="/leads">Back to leads</Link></Empty> : <ErrorNote error={lead.error} retry={lead.reload} />}
      </div>
    );
  }
  if (!lead.data) return <div class="page"><Loading label="Loading lead…" /></div>;
  const l = lead.data;
  const name = leadName(l);
  return (
    <div class="page page-lead" data-testid="lead-detail">
      <nav class="crumbs" aria-label="Breadcrumb">
        <Link href="/leads">Leads</Link> <span aria-hidden="true">/</span> <span aria-current="page">{name}</span>
      </nav>
      <PageHead
        title={name}
        subtitle={
          <span class="lead-meta">
            <Badge tone={statusTone(l.status)}>{l.status || "open"}</Badge>
            {l.stage && <Badge>{l.stage}</Badge>}
            <span>{agentName(agents, l.agent_id)}</span>
            <span>· added {ago(l.created_at)}</span>
            {l.source && <span>· via {l.source}</span>}
          </span>
        }
        actions={<ScorePill score={l.score} hot={score.data?.threshold} large />}
      />
      {can(role, "lead.write") && <Actions l={l} onChange={lead.reload} agents={agents} enrolled={enr.reload} />}
      <div class="grid grid-lead">
        <ContactCard l={l} />
        <ScoreCard a={score} />
        {coachOk && (
          <CoachingCard
            panel={panel}
            error={coachErr}
            reload={loadCoach}
            onUseDraft={can(role, "lead.write") ? (text) => setFill((f) => ({ text, n: (f?.n || 0) + 1, channel: replyChannel(l) })) : undefined}
          />
        )}
        <ChurnCard a={churn} />
        <TimelineCard a={acts} leadId={id} canWrite={can(role, "lead.write")} fill={fill} />
        <NurtureCard a={enr} />
        <MatchesCard a={matchesA} />
        {can(role, "contact.privacy") && <PrivacyCard id={id} name={name} />}
      </div>
    </div>
  );
}

/** A draft put into the composer; n tells one "Use draft" from the next. */
interface Fill { text: string; n: number; channel: "sms" | "email" }

/** The channel a reply goes out on: SMS where the lead consents to it,
 * else e-mail where they consent to that (else SMS, and the server says why
 * it cannot send). */
function replyChannel(l: Lead): "sms" | "email" {
  const x = l as any;
  return !x.consent_sms && x.consent_email ? "email" : "sms";
}

function Field(p: { label: string; children: any }) {
  return (
    <div class="kv">
      <dt>{p.label}</dt>
      <dd>{p.children}</dd>
    </div>
  );
}

function yesno(v: unknown) {
  return v === true ? "Yes" : v === false ? "No" : "—";
}

function ContactCard(p: { l: Lead }) {
  const l = p.l as any;
  return (
    <Card title="Contact & preferences" id="contact">
      <dl class="kvs">
        <Field label="E-mail">{l.email ? <a href={"mailto:" + l.email}>{l.email}</a> : "—"}</Field>
        <Field label="Phone">{l.phone ? <a href={"tel:" + l.phone}>{phone(l.phone)}</a> : "—"}</Field>
        <Field label="Consent">
          <span class="chips">
            <Badge tone={l.consent_sms ? "good" : "neutral"}>SMS {l.consent_sms ? "✓" : "✗"}</Badge>
            <Badge tone={l.consent_email ? "good" : "neutral"}>E-mail {l.consent_email ? "✓" : "✗"}</Badge>
            <Badge tone={l.consent_call ? "good" : "neutral"}>Call {l.consent_call ? "✓" : "✗"}</Badge>
            {l.dnd && <Badge tone="bad">Do not disturb</Badge>}
          </span>
        </Field>
        <Field label="Budget">{moneyRange(l.budget_min, l.budget_max)}</Field>
        <Field label="Beds / baths">{(l.beds ?? "any") + " / " + (l.baths ?? "any")}</Field>
        <Field label="Type">{l.property_type || "any"}</Field>
        <Field label="Areas">{(l.areas || []).join(", ") || "—"}</Field>
        <Field label="Timeline">{l.timeline || "—"}</Field>
        <Field label="Pre-approved">{yesno(l.preapproved)}</Field>
        <Field label="Language">{l.language || "—"}</Field>
        <Field label="Tags">{(l.tags || []).length ? <span class="chips">{l.tags.map((t: string) => <Badge>{t}</Badge>)}</span> : "—"}</Field>
        {l.ghl_contact_id && <Field label="GHL contact">{l.ghl_contact_id}</Field>}
      </dl>
    </Card>
  );
}

function reasonLabel(r: Reason): string {
  const v = r.value;
  const shown = v === null || v === undefined ? "unknown" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v);
  return `${humanize(r.feature)} (${shown})`;
}

function ScoreCard(p: { a: ReturnType<typeof useAsync<ScoreInfo>> }) {
  const s = p.a.data;
  const reasonsCfg = useMemo(() => {
    if (!s) return null;
    const rs = [...(s.reasons || [])].sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 10);
    return {
      type: "bar" as const,
      data: {
        labels: rs.map(reasonLabel),
        datasets: [{
          label: s.kind === "prior" ? "points" : "effect on log-odds",
          data: rs.map((r) => r.effect),
          backgroundColor: rs.map((r) => (r.effect >= 0 ? "#1f9d6b" : "#d64545")),
          borderRadius: 4,
          barThickness: 16,
        }],
      },
      options: { indexAxis: "y" as const, plugins: { legend: { display: false } }, scales: { x: { grid: { color: "#eef0f4" } }, y: { grid: { display: false } } } },
    };
  }, [s]);
  const histCfg = useMemo(() => {
    if (!s || !s.history || s.history.length < 2) return null;
    const h = [...s.history].reverse();
    return {
      type: "line" as const,
      data: {
        labels: h.map((x) => dateTime(x.at)),
        datasets: [{ label: "score", data: h.map((x) => Math.round(x.score * 100)), borderColor: "#3b5bdb", backgroundColor: "rgba(59,91,219,.12)", fill: true, tension: 0.25, pointRadius: 3 }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { min: 0, max: 100 }, x: { ticks: { maxTicksLimit: 4 } } } },
    };
  }, [s]);
  return (
    <Card
      title="Score and why"
      id="score"
      subtitle={s ? (s.kind === "prior" ? "Points prior (no trained model yet): each reason is points out of 100." : `Model v${s.model_version}: SHAP contributions in log-odds.`) : undefined}
    >
      {p.a.error && !s ? <ErrorNote error={p.a.error} retry={p.a.reload} /> : !s ? <Loading /> : (
        <>
          <div class="stats">
            <Stat label="Score" value={score100(s.score)} tone={s.hot ? "hot" : undefined} hint={s.hot ? "Hot lead" : `hot at ${score100(s.threshold)}`} />
            <Stat label="Scored" value={ago(s.scored_at)} hint={s.kind === "prior" ? "prior" : "model v" + s.model_version} />
            <Stat label="Changes" value={String(s.history?.length || 0)} hint="in history" />
          </div>
          {s.reasons?.length ? (
            <>
              <h3 class="h3">Reasons</h3>
              <ChartView config={reasonsCfg as any} height={Math.max(120, Math.min(10, s.reasons.length) * 30 + 40)} label={"Score reasons: " + s.reasons.map((r) => `${humanize(r.feature)} ${signed(r.effect)}`).join(", ")} testid="score-reasons-chart" />
            </>
          ) : <Empty>No reasons recorded.</Empty>}
          {histCfg && (
            <>
              <h3 class="h3">History</h3>
              <ChartView config={histCfg as any} height={160} label={"Score history, latest " + score100(s.score)} testid="score-history-chart" />
            </>
          )}
        </>
      )}
    </Card>
  );
}

const riskTone: Record<string, Tone> = { low: "good", medium: "warn", high: "bad" };

function ChurnCard(p: { a: ReturnType<typeof useAsync<any>> }) {
  const c = p.a.data;
  return (
    <Card title="Churn risk" id="churn" subtitle={c ? `Chance the lead goes quiet within ${c.horizon_days} days (${c.kind === "prior" ? "prior" : "model v" + c.version})` : undefined}>
      {p.a.error && !c ? <ErrorNote error={p.a.error} retry={p.a.reload} /> : !c ? <Loading /> : (
        <>
          <div class="stats">
            <Stat label="Probability" value={pct(c.probability)} />
            <Stat label="Risk" value={<Badge tone={riskTone[c.risk] || "neutral"}>{c.risk}</Badge>} />
          </div>
          {c.drivers?.length > 0 && (
            <>
              <h3 class="h3">Drivers</h3>
              <ul class="drivers">
                {c.drivers.map((d: any) => (
                  <li>
                    <span>{humanize(d.feature)}{d.value !== null && d.value !== undefined ? ` (${typeof d.value === "number" ? +d.value.toFixed(2) : d.value})` : ""}</span>
                    <span class={d.effect > 0 ? "neg" : "pos"}>{signed(d.effect * 100, 0)} pts</span>
                  </li>
                ))}
              </ul>
            </>
          )}
          {c.interventions?.length > 0 && (
            <>
              <h3 class="h3">Suggested</h3>
              <ul class="bullets">{c.interventions.map((t: string) => <li>{t}</li>)}</ul>
            </>
          )}
        </>
      )}
    </Card>
  );
}

function CoachingCard(p: { panel: CoachPanel; error: unknown; reload: () => void; onUseDraft?: (text: string) => void }) {
  const c = p.panel.loading ? null : p.panel;
  const [done, setDone] = useState<Record<number, string>>({});
  async function feedback(s: Suggestion, outcome: "accepted" | "dismissed") {
    if (!s.id) return;
    try {
      await api("/v1/coaching/feedback", { method: "POST", body: { suggestion_id: s.id, outcome } });
      setDone({ ...done, [s.id]: outcome });
    } catch (e) {
      toast(errorText(e), "bad");
    }
  }
  const typeTone: Record<string, Tone> = { warning: "bad", objection: "warn", next_step: "good", question: "info" };
  return (
    <Card title="Coaching" id="coaching" subtitle="What to say next, and why. Updates as messages arrive.">
      {/* what changed, said once to screen readers (not the whole panel again) */}
      <p class="sr-only" role="status" aria-live="polite" data-testid="coaching-status">{c?.note || ""}</p>
      <div data-testid="coaching-panel" data-pushed={c?.pushed ? "1" : "0"}>
        {p.error && !c ? <ErrorNote error={p.error} retry={p.reload} /> : !c ? <Loading /> : (
          <>
            <DraftBox panel={c} onUse={p.onUseDraft} />
            {!c.suggestions?.length ? <Empty>No suggestions: the conversation has nothing to act on yet.</Empty> : (
              <ol class="suggestions">
                {c.pushed && <li class="pushed-note muted small">Updated {ago(c.pushed)} from a new message</li>}
                {c.suggestions.map((s) => (
                  <li class="suggestion" data-testid="suggestion">
                    <div class="sg-head">
                      <Badge tone={typeTone[s.type] || "neutral"}>{humanize(s.type)}</Badge>
                      <span class="muted small">{humanize(s.item)}</span>
                    </div>
                    <p class="sg-text" id={s.id ? `sg-${s.id}-text` : undefined}>{s.text}</p>
                    <p class="sg-why muted small">{s.reason}</p>
                    {s.id && (
                      done[s.id] ? <span class="muted small">Marked {done[s.id]}</span> : (
                        <div class="sg-actions">
                          <button type="button" class="btn btn-small" onClick={() => feedback(s, "accepted")} aria-describedby={`sg-${s.id}-text`}>Use it</button>
                          <button type="button" class="btn btn-small btn-ghost" onClick={() => feedback(s, "dismissed")} aria-describedby={`sg-${s.id}-text`}>Dismiss</button>
                        </div>
                      )
                    )}
                  </li>
                ))}
              </ol>
            )}
          </>
        )}
      </div>
    </Card>
  );
}

// The LLM's reply draft (README "LLM reply drafts"): shown with who wrote it
// and how long it took; "Use draft" only fills the composer. Nothing is sent
// without the agent.
function DraftBox(p: { panel: CoachPanel; onUse?: (text: string) => void }) {
  const { main, waiting } = draftView(p.panel, Date.now());
  if (main.kind === "none") return null;
  return (
    <section class={"draft draft-" + main.kind} data-testid="draft" data-status={main.kind} data-waiting={waiting} aria-labelledby="draft-title">
      <h3 class="h3" id="draft-title">Reply draft</h3>
      {waiting === "writing" && (
        <p class="muted small draft-waiting"><span class="spinner" aria-hidden="true" /> Writing a draft for the new message… {main.kind === "ready" ? "The one below answers an earlier message." : ""}</p>
      )}
      {waiting === "gave_up" && (
        <p class="muted small draft-waiting">No draft came for the new message.{main.kind === "ready" ? " The one below answers an earlier message." : ""}</p>
      )}
      {main.kind === "pending" && (
        <p class="muted"><span class="spinner" aria-hidden="true" /> Writing a draft…</p>
      )}
      {main.kind === "off" && <p class="muted small">Drafts were not asked for.</p>}
      {main.kind === "unavailable" && <p class="small draft-reason" data-testid="draft-reason">No draft: {main.reason}.</p>}
      {main.kind === "ready" && (
        <>
          <blockquote class="draft-text" id="draft-text" data-testid="draft-text">{main.text}</blockquote>
          <p class="muted small" data-testid="draft-meta">
            {main.meta ? "Written by " + main.meta + ". " : ""}Review it before sending.
          </p>
          {p.onUse && (
            <button type="button" class="btn btn-small btn-primary" data-testid="use-draft" aria-describedby="draft-text" onClick={() => p.onUse!(main.text)}>
              Use draft
            </button>
          )}
        </>
      )}
    </section>
  );
}

const chanIcon: Record<string, string> = { sms: "SMS", email: "E-mail", call: "Call", note: "Note", web: "Web", task: "Task", appointment: "Appt" };

// The composer: a note, a call logged, or a message. An SMS or e-mail "to
// the lead" is sent for real through the tenant's provider
// (POST /v1/leads/{id}/messages, README "One-off messages"); its status in
// the timeline then follows the provider (queued, sent, delivered...) live.
// A message the lead sent, or one sent elsewhere, is only logged.
function newKey(): string {
  const c = globalThis.crypto as Crypto | undefined;
  return c && "randomUUID" in c ? c.randomUUID() : `k-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function TimelineCard(p: { a: ReturnType<typeof useAsync<any[]>>; leadId: number; canWrite: boolean; fill: Fill | null }) {
  const items = p.a.data;
  const [channel, setChannel] = useState("note");
  const [mode, setMode] = useState("send"); // send, in (from lead), out (sent elsewhere)
  const [body, setBody] = useState("");
  const [subject, setSubject] = useState("");
  const [busy, setBusy] = useState(false);
  // one key per message being composed: a retry after a lost answer (or a
  // double click) is the same send, never a second text
  const [idemKey, setIdemKey] = useState(newKey);
  const bodyRef = useRef<HTMLTextAreaElement>(null);
  // "Use draft": a reply to the lead, so a message to send (on the lead's
  // channel unless an SMS or e-mail is already being written); the agent
  // reviews it and presses send.
  useEffect(() => {
    if (!p.fill) return;
    if (channel !== "sms" && channel !== "email") setChannel(p.fill.channel);
    setMode("send");
    setBody(p.fill.text);
    const el = bodyRef.current;
    if (el) {
      el.focus();
      el.scrollIntoView({ block: "center" });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [p.fill?.n]);
  const isMsg = channel === "sms" || channel === "email";
  const sending = isMsg && mode === "send";
  const seg = channel === "sms" && sending ? smsSegments(body) : null;
  const tooLong = !!seg && seg.segments > SMS_MAX_SEGMENTS;
  const ready = !!body.trim() && !tooLong && (!sending || channel !== "email" || !!subject.trim());
  async function add(e: Event) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    try {
      if (sending) {
        const msg: Record<string, string> = { channel, body };
        if (channel === "email") msg.subject = subject;
        await api(`/v1/leads/${p.leadId}/messages`, { method: "POST", body: msg, headers: { "Idempotency-Key": idemKey } });
        setIdemKey(newKey());
        setSubject("");
        toast(channel === "sms" ? "Text queued to send" : "E-mail queued to send", "good");
      } else {
        const direction = channel === "note" ? "none" : mode === "in" ? "inbound" : "outbound";
        await api(`/v1/leads/${p.leadId}/activities`, { method: "POST", body: { channel, direction, body } });
        toast(channel === "note" ? "Note added" : "Logged", "good");
      }
      setBody("");
      p.a.reload();
    } catch (err) {
      toast(errorText(err), "bad");
    } finally {
      setBusy(false);
    }
  }
  const label = channel === "note" ? "Add note" : sending ? (channel === "sms" ? "Send text" : "Send e-mail") : "Log it";
  return (
    <Card title="Timeline" id="timeline" subtitle="Messages, calls, notes and appointments, newest first">
      {p.canWrite && (
        <form class="composer" onSubmit={add} data-testid="composer">
          <div class="row-fields">
            <label class="field">
              <span class="sr-only">Channel</span>
              <select name="channel" value={channel} onChange={(e) => setChannel((e.target as HTMLSelectElement).value)}>
                <option value="note">Note</option>
                <option value="sms">SMS</option>
                <option value="email">E-mail</option>
                <option value="call">Call</option>
              </select>
            </label>
            {channel !== "note" && (
              <label class="field">
                <span class="sr-only">What</span>
                <select name="mode" value={isMsg ? mode : mode === "send" ? "out" : mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>
                  {isMsg && <option value="send">Send to lead now</option>}
                  <option value="out">{isMsg ? "Log: sent elsewhere" : "Call to lead"}</option>
                  <option value="in">{isMsg ? "Log: from lead" : "Call from lead"}</option>
                </select>
              </label>
            )}
          </div>
          {sending && channel === "email" && (
            <label class="field">
              <span class="sr-only">Subject</span>
              <input name="subject" maxLength={200} placeholder="Subject" value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />
            </label>
          )}
          <label class="field">
            <span class="sr-only">{channel === "note" ? "Note" : "Message"}</span>
            <textarea ref={bodyRef} name="body" rows={p.fill ? 4 : 2} placeholder={channel === "note" ? "Add a note…" : sending ? "Write to the lead…" : "What was said…"} value={body} onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)} />
          </label>
          {seg && seg.segments > 0 && (
            <p class={"small " + (tooLong ? "bad" : "muted")} data-testid="sms-counter">
              {smsCounter(seg)}
              {tooLong ? ` — at most ${SMS_MAX_SEGMENTS} parts` : ""}
            </p>
          )}
          <button class="btn btn-primary btn-small" type="submit" disabled={busy || !ready}>{label}</button>
        </form>
      )}
      {p.a.error && !items ? <ErrorNote error={p.a.error} retry={p.a.reload} /> : !items ? <Loading /> : !items.length ? <Empty>No activity yet.</Empty> : (
        <ol class="timeline" data-testid="timeline">
          {items.map((a) => (
            <li class={"tl tl-" + a.direction}>
              <span class="tl-chan">{chanIcon[a.channel] || a.channel}</span>
              <div class="tl-body">
                <div class="tl-meta">
                  <span>{a.direction === "inbound" ? "From lead" : a.direction === "outbound" ? "To lead" : "Internal"}</span>
                  {a.status && <Badge tone={a.status === "delivered" ? "good" : a.status === "failed" || a.status === "undelivered" ? "bad" : a.status === "queued" || a.status === "sent" ? "info" : "neutral"}>{a.status}</Badge>}
                  <time class="muted">{dateTime(a.occurred_at)}</time>
                </div>
                {a.body && <p>{a.body}</p>}
              </div>
            </li>
          ))}
        </ol>
      )}
    </Card>
  );
}

const stepTone: Record<string, Tone> = { done: "good", failed: "bad", skipped: "neutral", queued: "info", sending: "warn" };

function NurtureCard(p: { a: ReturnType<typeof useAsync<any>> }) {
  const items: any[] = p.a.data?.items || [];
  return (
    <Card title="Nurture" id="nurture" subtitle="Sequences this lead is in and each message's delivery">
      {p.a.error && !p.a.data ? <ErrorNote error={p.a.error} retry={p.a.reload} /> : !p.a.data ? <Loading /> : !items.length ? <Empty>Not enrolled in any sequence.</Empty> : (
        <ul class="enrollments">
          {items.map((e) => (
            <li>
              <div class="enr-head">
                <strong>{e.sequence || "Sequence #" + e.sequence_id}</strong>
                <Badge tone={e.state === "active" ? "info" : e.state === "completed" ? "good" : "neutral"}>{e.state}</Badge>
                {e.exit_reason && <span class="muted small">{e.exit_reason}</span>}
              </div>
              <ol class="steps">
                {(e.history || []).map((st: any) => (
                  <li>
                    <span class="step-n" aria-label={"Step " + (st.step + 1)}>{st.step + 1}</span>
                    <Badge tone={stepTone[st.state] || "neutral"}>{st.state}</Badge>
                    <span class="step-when muted small">{st.state === "queued" ? "due " + dateTime(st.due_at) : dateTime(st.updated_at)}{st.attempts > 1 ? ` · ${st.attempts} attempts` : ""}</span>
                    {st.result && <span class="step-result small">{st.result}</span>}
                  </li>
                ))}
              </ol>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

function MatchesCard(p: { a: ReturnType<typeof useAsync<any>> }) {
  const m = p.a.data;
  return (
    <Card title="Matching homes" id="matches" subtitle={m ? `${m.matches?.length || 0} best of ${m.candidates ?? 0} that pass the lead's filters` : undefined}>
      {p.a.error && !m ? <ErrorNote error={p.a.error} retry={p.a.reload} /> : !m ? <Loading /> : !m.matches?.length ? <Empty>No active listing fits this lead's budget, size and areas.</Empty> : (
        <ul class="matches">
          {m.matches.map((x: any) => (
            <li class="match">
              <div class="match-head">
                <div>
                  <strong>{x.listing.address}</strong>
                  <div class="muted small">{money(x.listing.price)} · {x.listing.beds ?? "?"} bd · {x.listing.baths ?? "?"} ba{x.listing.sqft ? ` · ${x.listing.sqft} sqft` : ""} · {x.listing.type || ""}</div>
                </div>
                <span class="match-score" aria-label={`Match ${score100(x.score)} out of 100`}>{score100(x.score)}</span>
              </div>
              <ul class="reasons">
                {x.reasons.map((r: any) => (
                  <li>
                    <span class="fit" style={{ width: Math.round(r.fit * 100) + "%" }} aria-hidden="true" />
                    <span class="reason-text"><b>{humanize(r.factor)}</b> {r.detail}</span>
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

function Actions(p: { l: Lead; onChange: () => void; agents: ReturnType<typeof useAgents>; enrolled: () => void }) {
  const l = p.l;
  const [busy, setBusy] = useState("");
  const seqs = useAsync<any[]>(() => listAll("/v1/sequences", 500), []);
  const [agent, setAgent] = useState(l.agent_id == null ? "" : String(l.agent_id));
  const [seq, setSeq] = useState("");
  async function patch(body: Record<string, unknown>, what: string) {
    setBusy(what);
    try {
      await api(`/v1/leads/${l.id}`, { method: "PATCH", body, headers: { "If-Match": `"v${l.version}"` } });
      toast(what, "good");
      p.onChange();
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        toast("Someone changed this lead meanwhile: reloaded, try again.", "warn");
        p.onChange();
      } else toast(errorText(e), "bad");
    } finally {
      setBusy("");
    }
  }
  async function enrol() {
    if (!seq) return;
    setBusy("enrol");
    try {
      await api(`/v1/sequences/${seq}/enroll`, { method: "POST", body: { lead_id: l.id } });
      toast("Enrolled", "good");
      p.enrolled();
    } catch (e) {
      toast(e instanceof ApiError && e.status === 409 ? "Already enrolled in that sequence." : errorText(e), "bad");
    } finally {
      setBusy("");
    }
  }
  return (
    <div class="actions card" role="group" aria-label="Lead actions" data-testid="lead-actions">
      <form class="action" onSubmit={(e) => { e.preventDefault(); patch({ agent_id: agent ? Number(agent) : null }, "Agent assigned"); }}>
        <label class="field">
          <span>Agent</span>
          <select value={agent} onChange={(e) => setAgent((e.target as HTMLSelectElement).value)}>
            <option value="">Unassigned</option>
            {p.agents.map((a) => <option value={String(a.id)}>{a.name}{a.active ? "" : " (inactive)"}</option>)}
          </select>
        </label>
        <button class="btn btn-small" type="submit" disabled={!!busy || agent === (l.agent_id == null ? "" : String(l.agent_id))}>Assign</button>
      </form>
      <form class="action" onSubmit={(e) => { e.preventDefault(); enrol(); }}>
        <label class="field">
          <span>Sequence</span>
          <select value={seq} onChange={(e) => setSeq((e.target as HTMLSelectElement).value)}>
            <option value="">{seqs.data?.length ? "Choose…" : "No sequences"}</option>
            {(seqs.data || []).filter((s) => s.active !== false).map((s) => <option value={String(s.id)}>{s.name}</option>)}
          </select>
        </label>
        <button class="btn btn-small" type="submit" disabled={!!busy || !seq}>Enrol</button>
      </form>
      <div class="action action-status">
        <span class="field-label">Outcome</span>
        <div class="btn-row">
          {l.status !== "won" && <button type="button" class="btn btn-small btn-good" disabled={!!busy} onClick={() => patch({ status: "won" }, "Marked won")}>Mark won</button>}
          {l.status !== "lost" && <button type="button" class="btn btn-small btn-bad" disabled={!!busy} onClick={() => patch({ status: "lost" }, "Marked lost")}>Mark lost</button>}
          {l.status !== "open" && <button type="button" class="btn btn-small" disabled={!!busy} onClick={() => patch({ status: "open" }, "Reopened")}>Reopen</button>}
        </div>
      </div>
    </div>
  );
}

/** Export and erase (GDPR): admin only. The routes come with the privacy
 * work (GET /v1/contacts/{id}/export, DELETE /v1/contacts/{id}); a server
 * without them answers 404/405, which is said plainly. */
function PrivacyCard(p: { id: number; name: string }) {
  const [busy, setBusy] = useState("");
  const unavailable = (e: unknown) =>
    e instanceof ApiError && (e.status === 405 || (e.status === 404 && /route/i.test(e.message)));
  async function exportData() {
    setBusy("export");
    try {
      const data = await api(`/v1/contacts/${p.id}/export`);
      const blob = new Blob([typeof data === "string" ? data : JSON.stringify(data, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `contact-${p.id}-export.json`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 5000);
      toast("Export downloaded", "good");
    } catch (e) {
      toast(unavailable(e) ? "Export is not available on this server yet." : errorText(e), unavailable(e) ? "warn" : "bad");
    } finally {
      setBusy("");
    }
  }
  async function erase() {
    if (!window.confirm(`Erase every piece of personal data about ${p.name}? This cannot be undone.`)) return;
    setBusy("erase");
    try {
      await api(`/v1/contacts/${p.id}`, { method: "DELETE" });
      toast("Personal data erased", "good");
      navigate("/leads");
    } catch (e) {
      toast(unavailable(e) ? "Erasure is not available on this server yet." : errorText(e), unavailable(e) ? "warn" : "bad");
    } finally {
      setBusy("");
    }
  }
  return (
    <Card title="Personal data" id="privacy" subtitle="Admin only: the lead's data under GDPR">
      <div class="btn-row" data-testid="privacy-actions">
        <button type="button" class="btn btn-small" disabled={!!busy} onClick={exportData}>Export data</button>
        <button type="button" class="btn btn-small btn-bad" disabled={!!busy} onClick={erase}>Erase contact</button>
      </div>
    </Card>
  );
}
