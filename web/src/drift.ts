// Feature drift as GET /models (shared models) and GET /v1/builtin-models
// (each built-in model's active version) report it: {rows, psi: {feature:
// PSI or null}}. Plain module so the rules are unit-tested: features worst
// first, unmeasured ones (null: no rows yet, or no training distribution)
// last, and the usual PSI bands.
export type DriftStatus = "stable" | "shifting" | "drifted";

export interface DriftRow {
  feature: string;
  psi: number | null;
  status: DriftStatus | null;
}

export interface DriftView {
  rows: number;
  features: DriftRow[];
  worst: DriftRow | null;
}

// < 0.1 stable, 0.1–0.25 shifting, more a different population.
export function driftStatus(psi: number): DriftStatus {
  return psi < 0.1 ? "stable" : psi < 0.25 ? "shifting" : "drifted";
}

// The report as table rows (worst first, at most `limit`), or null when
// there is none (no model served, no training distribution, a bad value).
export function driftView(drift: unknown, limit = 20): DriftView | null {
  if (!drift || typeof drift !== "object") return null;
  const d = drift as { rows?: unknown; psi?: unknown };
  if (typeof d.rows !== "number" || !d.psi || typeof d.psi !== "object") return null;
  const all: DriftRow[] = Object.entries(d.psi as Record<string, unknown>).map(([feature, v]) => {
    const psi = typeof v === "number" && Number.isFinite(v) ? v : null;
    return { feature, psi, status: psi == null ? null : driftStatus(psi) };
  });
  all.sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1) || a.feature.localeCompare(b.feature));
  return { rows: d.rows, features: all.slice(0, limit), worst: all.length && all[0].psi != null ? all[0] : null };
}
