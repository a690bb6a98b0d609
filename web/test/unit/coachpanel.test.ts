import { describe, expect, it } from "vitest";
import { applyCoachingEvent, draftMeta, draftView, DRAFT_WAIT_MS, emptyPanel, fromAnswer, reasonText, type CoachPanel } from "../../src/coachpanel";

const sug = (text: string) => ({ id: 1, type: "question", item: "budget", text, reason: "why" });
const ready = (id: string, text: string) => ({ id, status: "ready", text, provider: "openai", model: "gpt-4o-mini", latency_ms: 840, streamed: false });
const builtIn = (seq: number, text: string) => ({ seq, data: { lead_id: 7, agent_id: 2, suggestions: [sug(text)], warnings: [] } });
const draftEv = (seq: number, draft: unknown, for_seq?: number) => ({ seq, data: { lead_id: 7, agent_id: 2, draft, ...(for_seq ? { for_seq } : {}) } });

function answered(draft: unknown, atSeq = 10): CoachPanel {
  return fromAnswer(null, { lead_id: 7, agent_id: 2, analysis: { sentiment: 0 }, suggestions: [sug("first")], draft }, atSeq, 1000);
}

describe("coaching panel: answers", () => {
  it("takes suggestions and a ready draft from the answer", () => {
    const s = answered(ready("d1", "Hi there"));
    expect(s.suggestions.map((x) => x.text)).toEqual(["first"]);
    expect(draftView(s, 1000)).toEqual({ main: { kind: "ready", text: "Hi there", meta: "openai · gpt-4o-mini · 840 ms" }, waiting: "none" });
  });
  it("null draft (no provider) shows nothing; off says off", () => {
    expect(draftView(answered(null), 0).main).toEqual({ kind: "none" });
    expect(draftView(fromAnswer(null, { suggestions: [] }, 0, 0), 0).main).toEqual({ kind: "none" });
    expect(draftView(answered({ status: "off" }), 0).main).toEqual({ kind: "off" });
  });
  it("a ready draft without text is not offered", () => {
    expect(draftView(answered({ id: "x", status: "ready" }), 0).main.kind).toBe("unavailable");
  });
  it("unavailable says why in words", () => {
    const v = draftView(answered({ id: "d1", status: "unavailable", reason: "rate_limited" }), 0).main;
    expect(v).toEqual({ kind: "unavailable", reason: reasonText("rate_limited") });
    expect(reasonText("rate_limited")).toMatch(/rate-limiting/);
    expect(reasonText("busy")).toMatch(/too many drafts/);
    expect(reasonText("something_new")).toBe("unavailable (something new)");
  });
  it("a pending draft is filled by its late event (same id), not by another answer's", () => {
    let s = answered({ id: "d1", status: "pending" });
    expect(draftView(s, 1000).main.kind).toBe("pending");
    const other = applyCoachingEvent(s, draftEv(11, ready("d9", "not ours")), 1100);
    expect(other).toBe(s);
    s = applyCoachingEvent(s, draftEv(12, ready("d1", "ours")), 1200);
    expect(draftView(s, 1200)).toEqual({ main: { kind: "ready", text: "ours", meta: "openai · gpt-4o-mini · 840 ms" }, waiting: "none" });
    expect(s.suggestions.map((x) => x.text)).toEqual(["first"]);
  });
  it("a pending draft that never comes ends as unavailable", () => {
    const s = answered({ id: "d1", status: "pending" });
    expect(draftView(s, 1000 + DRAFT_WAIT_MS - 1).main.kind).toBe("pending");
    expect(draftView(s, 1000 + DRAFT_WAIT_MS).main).toEqual({ kind: "unavailable", reason: "no draft arrived in time" });
  });
  it("events that arrive before the answer are merged into it", () => {
    let s = emptyPanel();
    expect(s.loading).toBe(true);
    s = applyCoachingEvent(s, builtIn(20, "m1"), 900); // no draft known yet: nothing awaited
    s = applyCoachingEvent(s, draftEv(21, ready("d2", "for m1"), 20), 950);
    s = fromAnswer(s, { suggestions: [sug("answer")], draft: ready("d1", "answer's, asked at 15") }, 15, 1000);
    expect(s.loading).toBe(false);
    expect(s.suggestions[0].text).toBe("answer");
    expect(draftView(s, 1000)).toMatchObject({ main: { kind: "ready", text: "for m1" }, waiting: "none" });
    expect(applyCoachingEvent(s, builtIn(20, "m1 replayed"), 1100)).toBe(s);
  });
  it("keeps a draft event for a later message that raced the answer", () => {
    let s = answered(ready("d1", "old"), 10);
    s = applyCoachingEvent(s, draftEv(21, ready("d2", "for message 20"), 20), 1500);
    const again = fromAnswer(s, { suggestions: [sug("reloaded")], draft: ready("d3", "answer as of 15") }, 15, 2000);
    expect(again.suggestions[0].text).toBe("reloaded");
    expect(again.draft?.text).toBe("for message 20");
    const newer = fromAnswer(s, { suggestions: [], draft: ready("d4", "answer as of 30") }, 30, 2000);
    expect(newer.draft?.text).toBe("answer as of 30");
  });
});

describe("coaching panel: events", () => {
  it("a built-in event replaces suggestions and awaits the new message's draft", () => {
    let s = answered(ready("d1", "old draft"), 10);
    s = applyCoachingEvent(s, builtIn(20, "second"), 5000);
    expect(s.suggestions[0].text).toBe("second");
    expect(s.pushed).toBe(5000);
    expect(s.draft?.text).toBe("old draft"); // not wiped
    expect(draftView(s, 5000).waiting).toBe("writing");
    expect(draftView(s, 5000 + DRAFT_WAIT_MS).waiting).toBe("gave_up");
    s = applyCoachingEvent(s, draftEv(21, ready("d2", "new draft"), 20), 6000);
    expect(s.suggestions[0].text).toBe("second"); // a draft-only event changes only the draft
    expect(draftView(s, 6000)).toMatchObject({ main: { kind: "ready", text: "new draft" }, waiting: "none" });
  });
  it("without a provider (null draft) nothing is awaited", () => {
    const s = applyCoachingEvent(answered(null), builtIn(20, "second"), 5000);
    expect(draftView(s, 5000)).toEqual({ main: { kind: "none" }, waiting: "none" });
    const off = applyCoachingEvent(answered({ status: "off" }), builtIn(20, "second"), 5000);
    expect(draftView(off, 5000).waiting).toBe("none");
  });
  it("a later built-in event does not wipe a newer draft for the same message", () => {
    let s = answered(ready("d1", "old"), 10);
    s = applyCoachingEvent(s, draftEv(21, ready("d2", "for 20"), 20), 1000);
    // the built-in event of message 20 shows up after its draft
    s = applyCoachingEvent(s, builtIn(20, "built-in for 20"), 1100);
    expect(s.suggestions[0].text).toBe("built-in for 20");
    expect(draftView(s, 1100)).toMatchObject({ main: { kind: "ready", text: "for 20" }, waiting: "none" });
  });
  it("a draft for an older message does not replace a newer one", () => {
    let s = answered(ready("d1", "old"), 10);
    s = applyCoachingEvent(s, draftEv(31, ready("d3", "for 30"), 30), 1000);
    const stale = applyCoachingEvent(s, draftEv(32, ready("d2", "for 20"), 20), 1100);
    expect(stale).toBe(s);
  });
  it("two messages in a row: the first one's draft leaves the second awaited", () => {
    let s = answered(ready("d1", "old"), 10);
    s = applyCoachingEvent(s, builtIn(20, "m1"), 1000);
    s = applyCoachingEvent(s, builtIn(22, "m2"), 1100);
    s = applyCoachingEvent(s, draftEv(23, ready("d2", "for m1"), 20), 1200);
    expect(draftView(s, 1200)).toMatchObject({ main: { kind: "ready", text: "for m1" }, waiting: "writing" });
    s = applyCoachingEvent(s, draftEv(24, ready("d3", "for m2"), 22), 1300);
    expect(draftView(s, 1300)).toMatchObject({ main: { kind: "ready", text: "for m2" }, waiting: "none" });
  });
  it("a failed draft for a message is shown with its reason", () => {
    let s = applyCoachingEvent(answered(ready("d1", "old"), 10), builtIn(20, "m1"), 1000);
    s = applyCoachingEvent(s, draftEv(21, { id: "d2", status: "unavailable", reason: "http_error", latency_ms: 12 }, 20), 1100);
    expect(draftView(s, 1100)).toEqual({ main: { kind: "unavailable", reason: reasonText("http_error") }, waiting: "none" });
    expect(s.note).toMatch(/No reply draft: .*error/);
  });
  it("ignores replays, malformed drafts and events without suggestions", () => {
    let s = applyCoachingEvent(answered(null), builtIn(20, "m1"), 1000);
    expect(applyCoachingEvent(s, builtIn(20, "again"), 1100)).toBe(s);
    expect(applyCoachingEvent(s, draftEv(21, { status: "weird" }, 20), 1100)).toBe(s);
    expect(applyCoachingEvent(s, draftEv(21, "text", 20), 1100)).toBe(s);
    expect(applyCoachingEvent(s, { seq: 30, data: { lead_id: 7 } }, 1100)).toBe(s);
    s = applyCoachingEvent(s, builtIn(25, "m2"), 1200);
    expect(s.suggestions[0].text).toBe("m2");
  });
});

describe("draftMeta", () => {
  it("names provider, model and latency", () => {
    expect(draftMeta({ status: "ready", provider: "anthropic", model: "claude", latency_ms: 2345, streamed: true })).toBe("anthropic · claude · 2.3 s (streamed)");
    expect(draftMeta({ status: "ready" })).toBe("");
  });
});
