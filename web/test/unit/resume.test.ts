import { describe, expect, it } from "vitest";
import { backoff, Resume } from "../../src/resume";

describe("resume", () => {
  it("first subscription starts live from the log's position", () => {
    const r = new Resume();
    expect(r.subscribe(["all"])).toEqual({ type: "subscribe", topics: ["all"] });
    expect(r.handle({ type: "subscribed", topics: ["all"], last_seq: 41 })).toEqual({ kind: "subscribed", lastSeq: 41, resumed: false });
    expect(r.lastSeq).toBe(41);
    expect(r.handle({ seq: 42, type: "lead.created", data: { id: 1 } }).kind).toBe("event");
    expect(r.lastSeq).toBe(42);
  });
  it("a reconnect resumes from the last seq delivered", () => {
    const r = new Resume();
    r.subscribe(["leads"]);
    r.handle({ type: "subscribed", last_seq: 10 });
    r.handle({ seq: 11, type: "lead.created", data: {} });
    r.handle({ seq: 12, type: "lead.scored", data: {} });
    // connection drops; on reconnect:
    const m = r.subscribe(["leads"], { min_score: 0.5 });
    expect(m).toEqual({ type: "subscribe", topics: ["leads"], filter: { min_score: 0.5 }, resume_from: 12 });
    // the replay overlaps: 12 again is dropped, 13.. delivered once
    expect(r.handle({ seq: 12, type: "lead.scored", data: {} })).toEqual({ kind: "duplicate", seq: 12 });
    expect(r.handle({ seq: 13, type: "lead.updated", data: {} }).kind).toBe("event");
    expect(r.handle({ type: "subscribed", last_seq: 20 })).toEqual({ kind: "subscribed", lastSeq: 20, resumed: true });
    expect(r.lastSeq).toBe(13); // the replay continues from 14, not from 20
    expect(r.handle({ seq: 14, type: "lead.updated", data: {} }).kind).toBe("event");
    expect(r.handle({ seq: 13, type: "lead.updated", data: {} }).kind).toBe("duplicate");
  });
  it("resync_required: reload and continue from the seq given", () => {
    const r = new Resume(5);
    r.subscribe(["all"]);
    expect(r.handle({ type: "resync_required", last_seq: 900, resume_from: 5 })).toEqual({ kind: "resync", lastSeq: 900 });
    expect(r.handle({ seq: 900, type: "x", data: {} }).kind).toBe("duplicate");
    expect(r.handle({ seq: 901, type: "x", data: {} }).kind).toBe("event");
    expect(r.subscribe(["all"]).resume_from).toBe(901);
  });
  it("other messages", () => {
    const r = new Resume();
    expect(r.handle({ type: "lagging", resume_from: 7 })).toEqual({ kind: "lagging", resumeFrom: 7 });
    expect(r.handle({ type: "authenticated", tenant: "demo", role: "admin" })).toEqual({ kind: "authenticated", role: "admin", tenant: "demo" });
    expect(r.handle({ type: "error", code: "forbidden", message: "no" })).toEqual({ kind: "error", code: "forbidden", message: "no" });
    expect(r.handle({ type: "pong" })).toEqual({ kind: "ignored" });
    expect(r.handle(null)).toEqual({ kind: "ignored" });
  });
  it("backs off from 250 ms to 5 s with jitter", () => {
    expect(backoff(0, 0.5)).toBe(250);
    expect(backoff(1, 0.5)).toBe(500);
    expect(backoff(3, 0.5)).toBe(2000);
    expect(backoff(10, 0.5)).toBe(5000);
    expect(backoff(10, 0)).toBe(4000);
    expect(backoff(10, 0.999)).toBeLessThanOrEqual(6000);
  });
});
