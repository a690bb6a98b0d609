// Shared pieces of the dashboard's UI.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./api";
import { score100, scoreBand } from "./format";
import { linkClick } from "./router";

export function Link(p: { href: string; class?: string; children: ComponentChildren; "aria-label"?: string; title?: string }) {
  return (
    <a href={p.href} class={p.class} onClick={linkClick as any} aria-label={p["aria-label"]} title={p.title}>
      {p.children}
    </a>
  );
}

export function Card(p: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string; id?: string; subtitle?: ComponentChildren }) {
  const hid = p.id ? p.id + "-title" : undefined;
  return (
    <section class={"card " + (p.class || "")} id={p.id} aria-labelledby={p.title ? hid : undefined}>
      {(p.title || p.actions) && (
        <header class="card-head">
          <div>
            {p.title && <h2 id={hid}>{p.title}</h2>}
            {p.subtitle && <p class="muted small">{p.subtitle}</p>}
          </div>
          {p.actions && <div class="card-actions">{p.actions}</div>}
        </header>
      )}
      <div class="card-body">{p.children}</div>
    </section>
  );
}

export type Tone = "neutral" | "good" | "warn" | "bad" | "info" | "hot";
export function Badge(p: { tone?: Tone; children: ComponentChildren; title?: string }) {
  return (
    <span class={"badge badge-" + (p.tone || "neutral")} title={p.title}>
      {p.children}
    </span>
  );
}

export function ScorePill(p: { score: number | null | undefined; hot?: number; large?: boolean }) {
  const band = scoreBand(p.score, p.hot);
  return (
    <span class={`score score-${band}${p.large ? " score-lg" : ""}`} aria-label={`Score ${score100(p.score)} out of 100`}>
      {score100(p.score)}
    </span>
  );
}

export function Stat(p: { label: string; value: ComponentChildren; hint?: ComponentChildren; tone?: Tone }) {
  return (
    <div class={"stat" + (p.tone ? " stat-" + p.tone : "")}>
      <div class="stat-label">{p.label}</div>
      <div class="stat-value">{p.value}</div>
      {p.hint && <div class="stat-hint">{p.hint}</div>}
    </div>
  );
}

export function Loading(p: { label?: string }) {
  return (
    <div class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {p.label || "Loading…"}
    </div>
  );
}

export function Empty(p: { children: ComponentChildren }) {
  return <div class="empty">{p.children}</div>;
}

export function ErrorNote(p: { error: unknown; retry?: () => void }) {
  return (
    <div class="error-note" role="alert">
      {errorText(p.error)}
      {p.retry && (
        <button type="button" class="btn btn-small" onClick={p.retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Meter(p: { value: number; max: number; label: string }) {
  const frac = p.max > 0 ? Math.min(1, p.value / p.max) : 0;
  const tone = frac >= 0.9 ? "bad" : frac >= 0.7 ? "warn" : "good";
  return (
    <div class="meter" role="meter" aria-valuemin={0} aria-valuemax={p.max} aria-valuenow={p.value} aria-label={p.label}>
      <div class={"meter-fill meter-" + tone} style={{ width: (frac * 100).toFixed(1) + "%" }} />
    </div>
  );
}

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  set: (t: T) => void;
}

/** Runs fn when deps change; keeps the last data while reloading. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const gen = useRef(0);
  const run = useCallback(() => {
    const g = ++gen.current;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => g === gen.current && setState({ data, loading: false }),
      (error) => g === gen.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    run();
  }, [run]);
  return {
    data: state.data,
    error: state.error,
    loading: state.loading,
    reload: run,
    set: (data: T) => setState({ data, loading: false }),
  };
}

// ---- toasts ----
type ToastT = { id: number; text: string; tone: Tone };
let toasts: ToastT[] = [];
const toastL = new Set<() => void>();
let toastId = 0;
export function toast(text: string, tone: Tone = "info"): void {
  const t = { id: ++toastId, text, tone };
  toasts = [...toasts, t];
  toastL.forEach((l) => l());
  setTimeout(() => {
    toasts = toasts.filter((x) => x.id !== t.id);
    toastL.forEach((l) => l());
  }, 4500);
}

export function Toasts() {
  const [, set] = useState(0);
  useEffect(() => {
    const l = () => set((x) => x + 1);
    toastL.add(l);
    return () => {
      toastL.delete(l);
    };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} class={"toast toast-" + t.tone}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

/** Debounces a value. */
export function useDebounced<T>(v: T, ms: number): T {
  const [d, set] = useState(v);
  useEffect(() => {
    const t = setTimeout(() => set(v), ms);
    return () => clearTimeout(t);
  }, [v, ms]);
  return d;
}

/** Re-renders every `ms` (relative times, polling). */
export function useTick(ms: number): number {
  const [n, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  return n;
}

export function PageHead(p: { title: string; subtitle?: ComponentChildren; actions?: ComponentChildren }) {
  useEffect(() => {
    document.title = p.title + " · ehub";
  }, [p.title]);
  return (
    <div class="page-head">
      <div>
        <h1>{p.title}</h1>
        {p.subtitle && <p class="muted">{p.subtitle}</p>}
      </div>
      {p.actions && <div class="page-actions">{p.actions}</div>}
    </div>
  );
}
