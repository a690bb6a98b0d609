// Reliability diagram data from a classifier's held-out calibration bins
// (metrics.calibration: ten equal-width bins of predicted probability, each
// with its row count, mean prediction and observed positive rate). Plain
// module so the rules are unit-tested: empty bins are not points, and bad
// input gives no plot rather than a wrong one.
export interface CalBin {
  lo: number;
  hi: number;
  count: number;
  mean_pred: number | null;
  observed: number | null;
}

export interface CalPoint {
  x: number; // mean predicted probability
  y: number; // observed positive rate
  count: number;
  lo: number;
  hi: number;
}

const isProb = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 1;

// The bins as plot points (non-empty bins only), or null when the value is not
// a list of bins (older models, regression models).
export function calibrationPoints(bins: unknown): CalPoint[] | null {
  if (!Array.isArray(bins) || bins.length === 0) return null;
  const out: CalPoint[] = [];
  for (const b of bins as CalBin[]) {
    if (!b || typeof b !== "object" || !isProb(b.lo) || !isProb(b.hi)) return null;
    if (!(typeof b.count === "number" && b.count > 0)) continue;
    if (!isProb(b.mean_pred) || !isProb(b.observed)) return null;
    out.push({ x: b.mean_pred, y: b.observed, count: b.count, lo: b.lo, hi: b.hi });
  }
  return out;
}

// ECE from the points, the same sum the server reports: Σ count·|y − x| / n.
export function calibrationError(points: CalPoint[]): number | null {
  const n = points.reduce((s, p) => s + p.count, 0);
  if (!n) return null;
  return points.reduce((s, p) => s + p.count * Math.abs(p.y - p.x), 0) / n;
}

// The version whose calibration a model card shows: the active one, else the newest.
export function shownVersion<T extends { version: number; active?: boolean }>(versions: T[] | undefined): T | null {
  if (!versions?.length) return null;
  return versions.find((v) => v.active) ?? versions.reduce((a, b) => (b.version > a.version ? b : a));
}
