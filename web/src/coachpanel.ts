// The lead page's coaching panel as data: the built-in suggestions and the
// LLM reply draft, merged from the coaching answer and the coaching.updated
// events of the realtime feed. Pure (no DOM, no clock of its own), so the
// rules below have unit tests (test/unit/coachpanel.test.ts).
//
// Two kinds of coaching.updated arrive (README "Coaching"):
// - built in, for an inbound message: {lead_id, agent_id, suggestions,
//   warnings}, with no draft;
// - a draft: {lead_id, agent_id, draft, for_seq?}. for_seq is the seq of the
//   built-in event of the message it answers (a draft for an inbound
//   message); without it, it is the late draft of a coaching answer (same
//   id as the answer's "pending" draft).
// A draft-only event changes only the draft. A built-in event changes the
// suggestions, and never wipes a draft that is for the same message or a
// newer one; a draft for an older message stays visible, marked as such,
// while the new message's draft is being written.

export type DraftStatus = "ready" | "pending" | "unavailable" | "off";

export interface Draft {
  id?: string;
  status: DraftStatus;
  text?: string;
  provider?: string;
  model?: string;
  latency_ms?: number;
  streamed?: boolean;
  reason?: string;
}

export interface Suggestion { id?: number; type: string; item: string; text: string; reason: string; message_id?: number }

export interface CoachPanel {
  suggestions: Suggestion[];
  warnings?: unknown;
  analysis?: unknown;
  /** When a pushed (built-in) event last replaced the suggestions (ms). */
  pushed?: number;
  /** The feed seq the suggestions are as of (0: from an answer). */
  seq: number;
  /** The draft shown; null when no provider is configured. */
  draft: Draft | null;
  /** The feed seq of the message the draft answers (answers: the feed's
   * position when the answer was asked for). */
  draftFor: number;
  /** A newer message came after the draft shown and its draft is awaited
   * since this time (ms); 0 when none is awaited. */
  awaiting: number;
  /** What changed last, for the panel's live region. */
  note: string;
  /** No answer yet: events are collected, the answer is merged over them. */
  loading: boolean;
}

/** The panel before its answer: events that arrive meanwhile (a draft for
 * a message newer than the request, say) are kept and merged. */
export function emptyPanel(): CoachPanel {
  return { suggestions: [], seq: 0, draft: null, draftFor: 0, awaiting: 0, note: "", loading: true };
}

/** How long the panel says "writing a draft" for a new message before it
 * says none came. The server's own limit is --llm-timeout (10 s by
 * default); a draft it skips (breaker open, too many at once) is never
 * published, so the panel cannot wait forever. */
export const DRAFT_WAIT_MS = 30_000;

export function isDraft(v: unknown): v is Draft {
  if (!v || typeof v !== "object") return false;
  const s = (v as Draft).status;
  return s === "ready" || s === "pending" || s === "unavailable" || s === "off";
}

function asDraft(v: unknown): Draft | null {
  if (!isDraft(v)) return null;
  // a ready draft without text is not something an agent can use
  if (v.status === "ready" && typeof v.text !== "string") return { ...v, status: "unavailable", reason: "malformed" };
  return v;
}

/**
 * The panel from a coaching answer (POST /v1/leads/{id}/coaching), asked
 * for when the feed had applied up to `atSeq`. A draft event for a later
 * message that arrived while the answer was on its way is kept.
 */
export function fromAnswer(prev: CoachPanel | null, answer: any, atSeq: number, now: number): CoachPanel {
  const a = answer || {};
  let draft = a.draft === undefined ? null : asDraft(a.draft);
  let draftFor = atSeq;
  // a pending draft follows as an event; it is awaited like a new message's
  let awaiting = draft?.status === "pending" ? now : 0;
  if (prev && prev.draftFor > atSeq && prev.draft) {
    draft = prev.draft;
    draftFor = prev.draftFor;
    awaiting = prev.awaiting;
  }
  return {
    suggestions: Array.isArray(a.suggestions) ? a.suggestions : [],
    warnings: a.warnings ?? a.analysis?.warnings,
    analysis: a.analysis,
    pushed: undefined,
    seq: prev ? prev.seq : 0, // built-in events already seen are not applied again
    draft,
    draftFor,
    awaiting,
    note: draft?.status === "ready" ? "Coaching and a reply draft loaded" : "Coaching loaded",
    loading: false,
  };
}

/**
 * Applies one coaching.updated event (already known to be about this lead)
 * at time `now`. Returns `s` itself when the event changes nothing.
 */
export function applyCoachingEvent(s: CoachPanel, ev: { seq: number; data: any }, now: number): CoachPanel {
  const d = ev.data || {};
  if (d.draft !== undefined) {
    const draft = asDraft(d.draft);
    if (!draft) return s;
    const forSeq = typeof d.for_seq === "number" ? d.for_seq : null;
    if (forSeq === null) {
      // the late draft of an answer: only the one this panel is waiting for
      if (!s.draft || s.draft.status !== "pending" || !draft.id || s.draft.id !== draft.id) return s;
      return { ...s, draft, awaiting: s.seq > s.draftFor ? s.awaiting : 0, note: draftNote(draft) };
    }
    // a draft for an older message than the one shown is stale
    if (forSeq < s.draftFor) return s;
    // still awaited if a message newer than this draft's came meanwhile
    return { ...s, draft, draftFor: forSeq, awaiting: s.seq > forSeq ? s.awaiting : 0, note: draftNote(draft) };
  }
  if (!Array.isArray(d.suggestions)) return s;
  if (ev.seq && ev.seq <= s.seq) return s; // already applied
  const next: CoachPanel = { ...s, suggestions: d.suggestions, warnings: d.warnings, pushed: now, seq: ev.seq || s.seq, note: "Coaching updated from a new message" };
  // A new message after the draft shown: its draft will follow when a
  // provider is configured (the panel has had a draft, not null or off).
  if (ev.seq > s.draftFor && s.draft && s.draft.status !== "off") next.awaiting = now;
  return next;
}

function draftNote(d: Draft): string {
  if (d.status === "ready") return "Reply draft ready";
  if (d.status === "unavailable") return "No reply draft: " + reasonText(d.reason);
  if (d.status === "pending") return "Writing a reply draft…";
  return "";
}

/** What an agent reads for a draft's failure. */
export function reasonText(reason: string | undefined): string {
  switch (reason) {
    case "timeout": return "the writing service took too long to answer";
    case "connect_failed": return "the writing service could not be reached";
    case "rate_limited": return "the writing service is rate-limiting us; try again in a minute";
    case "overloaded": return "the writing service is overloaded; try again shortly";
    case "http_error": return "the writing service answered with an error";
    case "malformed": return "the writing service's answer could not be read";
    case "breaker_open": return "paused after repeated failures of the writing service; it is retried shortly";
    case "busy": return "too many drafts are being written right now";
    case "out_of_memory":
    case "cannot_schedule": return "the server could not start a draft just now";
    default: return reason ? "unavailable (" + reason.replace(/_/g, " ") + ")" : "unavailable";
  }
}

export type DraftView =
  | { kind: "none" }
  | { kind: "off" }
  | { kind: "pending" }
  | { kind: "unavailable"; reason: string }
  | { kind: "ready"; text: string; meta: string };

/** What the panel shows for the draft now, and whether it is for an
 * earlier message while the new one's draft is awaited (or never came). */
export function draftView(s: CoachPanel, now: number): { main: DraftView; waiting: "none" | "writing" | "gave_up" } {
  const d = s.draft;
  let main: DraftView;
  if (!d) main = { kind: "none" };
  else if (d.status === "off") main = { kind: "off" };
  else if (d.status === "pending") main = { kind: "pending" };
  else if (d.status === "unavailable") main = { kind: "unavailable", reason: reasonText(d.reason) };
  else main = { kind: "ready", text: d.text || "", meta: draftMeta(d) };
  let waiting: "none" | "writing" | "gave_up" = "none";
  if (s.awaiting) waiting = now - s.awaiting < DRAFT_WAIT_MS ? "writing" : "gave_up";
  if (main.kind === "pending") {
    // the pending draft is the one awaited: no separate note
    if (waiting === "gave_up") main = { kind: "unavailable", reason: "no draft arrived in time" };
    waiting = "none";
  }
  return { main, waiting };
}

/** "openai · gpt-4o-mini · 840 ms (streamed)" */
export function draftMeta(d: Draft): string {
  const parts: string[] = [];
  if (d.provider) parts.push(d.provider);
  if (d.model) parts.push(d.model);
  if (typeof d.latency_ms === "number" && isFinite(d.latency_ms))
    parts.push(d.latency_ms >= 1000 ? (d.latency_ms / 1000).toFixed(1) + " s" : Math.round(d.latency_ms) + " ms");
  return parts.join(" · ") + (d.streamed ? " (streamed)" : "");
}
