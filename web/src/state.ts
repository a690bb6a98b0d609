// Application-wide state: the session's live feed, the leads table it
// keeps current, and a small event hub pages subscribe to.
import { useEffect, useState } from "preact/hooks";
import { currentSession, listAll, onSession, token, type Session } from "./api";
import { LiveFeed, type LiveStatus } from "./live";
import { filterQuery, LeadTable, type Lead, type RealtimeEvent } from "./merge";

export const table = new LeadTable({}, "score_desc");
export const MAX_ROWS = 50_000;

type EvL = (ev: RealtimeEvent) => void;
const evListeners = new Set<EvL>();
type L = () => void;
const tableListeners = new Set<L>();
const statusListeners = new Set<L>();

export let liveStatus: LiveStatus = "offline";
let feed: LiveFeed | null = null;
let subscribed = false;
let wantLoad = false;

export const loadState = { loading: false, loaded: 0, error: "" as string, generation: 0, complete: false };

function notifyTable() {
  for (const l of tableListeners) l();
}

function topicsFor(s: Session): string[] {
  // Agents see their own leads and coaching; everyone else the whole tenant.
  if (s.user.role === "agent") return ["leads", "scores", "activity", "nurture", "coaching:me"];
  return ["all"];
}

export function startLive(s: Session): void {
  stopLive();
  subscribed = false;
  feed = new LiveFeed({
    topics: topicsFor(s),
    token,
    onEvent(ev) {
      const c = table.apply(ev);
      if (c.kind !== "none") notifyTable();
      for (const l of evListeners) l(ev);
    },
    onStatus(st) {
      liveStatus = st;
      for (const l of statusListeners) l();
    },
    onSubscribed(_seq, resumed) {
      const first = !subscribed;
      subscribed = true;
      // The first snapshot is read after the subscription began, so no
      // event can fall between the two; a resume needs no snapshot.
      if ((first && wantLoad) || (!resumed && !first)) reloadLeads();
    },
    onResync() {
      reloadLeads();
    },
  });
  feed.start();
}

export function stopLive(): void {
  feed?.stop();
  feed = null;
}

export function feedInfo(): { lastSeq: number | null; reconnects: number } {
  return { lastSeq: feed?.lastSeq ?? null, reconnects: feed?.reconnects ?? 0 };
}

onSession((s) => {
  if (!s) stopLive();
});

/** Loads (or reloads) the table for its current filters, page by page. */
export async function reloadLeads(): Promise<void> {
  wantLoad = true;
  if (feed && !subscribed) return; // runs once the feed is subscribed
  const gen = ++loadState.generation;
  loadState.loading = true;
  loadState.complete = false;
  loadState.loaded = 0;
  loadState.error = "";
  table.reset();
  notifyTable();
  const q = filterQuery(table.filters);
  try {
    await listAll<Lead>("/v1/leads" + (q ? "?" + q : ""), MAX_ROWS, (items) => {
      if (gen !== loadState.generation) throw new Error("superseded");
      table.add(items);
      loadState.loaded += items.length;
      notifyTable();
    });
    if (gen === loadState.generation) loadState.complete = true;
  } catch (e) {
    if (gen === loadState.generation && !(e instanceof Error && e.message === "superseded"))
      loadState.error = e instanceof Error ? e.message : String(e);
  } finally {
    if (gen === loadState.generation) {
      loadState.loading = false;
      notifyTable();
    }
  }
}

export function ensureLeadsLoaded(): void {
  if (!wantLoad) reloadLeads();
}

export function useTable(): number {
  const [n, set] = useState(0);
  useEffect(() => {
    const l = () => set((x) => x + 1);
    tableListeners.add(l);
    return () => {
      tableListeners.delete(l);
    };
  }, []);
  return n;
}

export function useLiveStatus(): LiveStatus {
  const [, set] = useState(0);
  useEffect(() => {
    const l = () => set((x) => x + 1);
    statusListeners.add(l);
    return () => {
      statusListeners.delete(l);
    };
  }, []);
  return liveStatus;
}

/** Calls fn for every realtime event while the component is mounted. */
export function useLiveEvents(fn: EvL, deps: unknown[] = []): void {
  useEffect(() => {
    evListeners.add(fn);
    return () => {
      evListeners.delete(fn);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function useSession(): Session | null {
  const [s, set] = useState(currentSession());
  useEffect(() => onSession(set), []);
  return s;
}

/** The lead id an event is about, if any. */
export function eventLeadId(ev: RealtimeEvent): number | null {
  const d = ev.data || {};
  if (typeof d.lead_id === "number") return d.lead_id;
  if (d.lead && typeof d.lead.id === "number") return d.lead.id;
  if (ev.type.startsWith("lead.") && typeof d.id === "number") return d.id;
  if (d.activity && typeof d.activity.lead_id === "number") return d.activity.lead_id;
  return null;
}
