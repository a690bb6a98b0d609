// The realtime feed's resume logic (README "Realtime"), kept apart from the
// WebSocket so it can be unit-tested: which subscribe message to send after
// (re)connecting, and what each server message means for the client.
//
// The client remembers the last seq it delivered. Reconnecting, it
// subscribes with resume_from = that seq; the server replays everything
// after it, then goes live — no gap. Replays may overlap what already
// arrived (a reconnect racing a late frame), so anything at or below the
// last seq is dropped — no duplicate. A resume point the server can no
// longer serve comes back as resync_required: the caller reloads its
// snapshot and continues from the seq given.

import type { RealtimeEvent } from "./merge";

export interface SubscribeMessage {
  type: "subscribe";
  topics: string[];
  filter?: Record<string, unknown>;
  resume_from?: number;
}

export type Outcome =
  | { kind: "event"; event: RealtimeEvent }
  | { kind: "duplicate"; seq: number }
  | { kind: "subscribed"; lastSeq: number; resumed: boolean }
  | { kind: "resync"; lastSeq: number }
  | { kind: "lagging"; resumeFrom: number }
  | { kind: "authenticated"; role: string; tenant: string }
  | { kind: "error"; code: string; message: string }
  | { kind: "ignored" };

export class Resume {
  /** The last seq delivered to the application (null: none yet). */
  lastSeq: number | null;
  private resuming = false;

  constructor(lastSeq: number | null = null) {
    this.lastSeq = lastSeq;
  }

  subscribe(topics: string[], filter?: Record<string, unknown>): SubscribeMessage {
    const m: SubscribeMessage = { type: "subscribe", topics };
    if (filter && Object.keys(filter).length) m.filter = filter;
    if (this.lastSeq !== null) m.resume_from = this.lastSeq;
    this.resuming = this.lastSeq !== null;
    return m;
  }

  handle(msg: any): Outcome {
    if (!msg || typeof msg !== "object") return { kind: "ignored" };
    if (typeof msg.seq === "number" && typeof msg.type === "string") {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return { kind: "duplicate", seq: msg.seq };
      this.lastSeq = msg.seq;
      return { kind: "event", event: msg as RealtimeEvent };
    }
    switch (msg.type) {
      case "subscribed": {
        const resumed = this.resuming;
        this.resuming = false;
        // A first subscription starts live from the log's position now.
        if (this.lastSeq === null && typeof msg.last_seq === "number") this.lastSeq = msg.last_seq;
        return { kind: "subscribed", lastSeq: msg.last_seq, resumed };
      }
      case "resync_required":
        this.lastSeq = typeof msg.last_seq === "number" ? msg.last_seq : this.lastSeq;
        return { kind: "resync", lastSeq: this.lastSeq ?? 0 };
      case "lagging":
        return { kind: "lagging", resumeFrom: msg.resume_from };
      case "authenticated":
        return { kind: "authenticated", role: msg.role, tenant: msg.tenant };
      case "error":
        return { kind: "error", code: String(msg.code || "error"), message: String(msg.message || "") };
      default:
        return { kind: "ignored" };
    }
  }
}

/** Reconnect delay: 250 ms doubling to 5 s, with ±20 % jitter (rand in [0,1)). */
export function backoff(attempt: number, rand: number = Math.random()): number {
  const base = Math.min(5000, 250 * 2 ** Math.max(0, attempt));
  return Math.round(base * (0.8 + 0.4 * rand));
}
