import { describe, expect, it } from "vitest";
import { calibrationError, calibrationPoints, shownVersion } from "../../src/calibration";

// The same worked example as tests/unit/test_ml.c (test_calibration).
const bins = [
  { lo: 0, hi: 0.1, count: 1, mean_pred: 0.05, observed: 0 },
  { lo: 0.1, hi: 0.2, count: 2, mean_pred: 0.135, observed: 0.5 },
  ...[2, 3, 4].map((b) => ({ lo: b / 10, hi: (b + 1) / 10, count: 0, mean_pred: null, observed: null })),
  { lo: 0.5, hi: 0.6, count: 1, mean_pred: 0.55, observed: 0 },
  ...[6, 7, 8].map((b) => ({ lo: b / 10, hi: (b + 1) / 10, count: 0, mean_pred: null, observed: null })),
  { lo: 0.9, hi: 1, count: 2, mean_pred: 0.975, observed: 1 },
];

describe("calibration", () => {
  it("keeps the non-empty bins as points, in order", () => {
    const p = calibrationPoints(bins)!;
    expect(p.map((x) => [x.x, x.y, x.count])).toEqual([[0.05, 0, 1], [0.135, 0.5, 2], [0.55, 0, 1], [0.975, 1, 2]]);
  });
  it("gives back the server's ECE", () => {
    expect(calibrationError(calibrationPoints(bins)!)).toBeCloseTo(0.23, 12);
    expect(calibrationError([])).toBeNull();
  });
  it("refuses what is not a list of bins", () => {
    expect(calibrationPoints(undefined)).toBeNull();
    expect(calibrationPoints([])).toBeNull();
    expect(calibrationPoints(0.05)).toBeNull();
    expect(calibrationPoints([{ lo: 0, hi: 0.1, count: 3, mean_pred: 1.5, observed: 0 }])).toBeNull();
    expect(calibrationPoints([{ lo: 0, hi: 0.1, count: 3, mean_pred: null, observed: 0 }])).toBeNull();
  });
  it("shows the active version, else the newest", () => {
    expect(shownVersion([{ version: 3 }, { version: 2, active: true }, { version: 1 }])!.version).toBe(2);
    expect(shownVersion([{ version: 1 }, { version: 4 }])!.version).toBe(4);
    expect(shownVersion([])).toBeNull();
  });
});
