// The dashboard's one WebSocket to /ws/realtime: authenticates with the
// access token in the first message (no token in the URL or in logs),
// subscribes, delivers events in seq order, and reconnects with
// resume_from after a drop (see resume.ts).
import { Resume, backoff } from "./resume";
import type { RealtimeEvent } from "./merge";

export type LiveStatus = "connecting" | "live" | "reconnecting" | "offline";

export interface LiveOptions {
  topics: string[];
  token: () => Promise<string | null>;
  onEvent: (ev: RealtimeEvent) => void;
  onStatus?: (s: LiveStatus, detail?: string) => void;
  /** The server cannot replay from our position: reload snapshots. */
  onResync?: () => void;
  /** Called on each (re)subscription with whether it was a resume. */
  onSubscribed?: (lastSeq: number, resumed: boolean) => void;
  url?: string;
}

export class LiveFeed {
  private ws: WebSocket | null = null;
  private resume = new Resume();
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  status: LiveStatus = "connecting";
  reconnects = 0;

  constructor(private o: LiveOptions) {}

  get lastSeq(): number | null {
    return this.resume.lastSeq;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "bye");
    this.setStatus("offline");
  }

  private setStatus(s: LiveStatus, detail?: string) {
    this.status = s;
    this.o.onStatus?.(s, detail);
  }

  private url(): string {
    if (this.o.url) return this.o.url;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws/realtime`;
  }

  private async connect() {
    if (this.stopped) return;
    let token: string | null = null;
    try {
      token = await this.o.token();
    } catch {
      token = null;
    }
    if (this.stopped) return;
    if (!token) {
      this.setStatus("offline", "signed out");
      return;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token }));
      ws.send(JSON.stringify(this.resume.subscribe(this.o.topics)));
    };
    ws.onmessage = (m) => {
      if (this.ws !== ws) return;
      let msg: any;
      try {
        msg = JSON.parse(typeof m.data === "string" ? m.data : "");
      } catch {
        return;
      }
      const out = this.resume.handle(msg);
      switch (out.kind) {
        case "event":
          this.o.onEvent(out.event);
          break;
        case "subscribed":
          this.attempt = 0;
          this.setStatus("live");
          this.o.onSubscribed?.(out.lastSeq, out.resumed);
          break;
        case "resync":
          this.o.onResync?.();
          break;
        case "error":
          if (out.code === "unauthenticated") ws.close(4001, "unauthenticated");
          break;
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private retry() {
    if (this.stopped) return;
    this.setStatus("reconnecting");
    const d = backoff(this.attempt++);
    this.reconnects++;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, d);
  }
}
