import { describe, expect, it } from "vitest";
import { driftStatus, driftView } from "../../src/drift";

describe("drift", () => {
  it("orders features worst first, unmeasured last, with their bands", () => {
    const v = driftView({ rows: 120, psi: { preapproved: 0.002, source: 6.1, budget_max: 0.18, tags: null } })!;
    expect(v.rows).toBe(120);
    expect(v.features.map((r) => [r.feature, r.status])).toEqual([
      ["source", "drifted"], ["budget_max", "shifting"], ["preapproved", "stable"], ["tags", null],
    ]);
    expect(v.worst?.feature).toBe("source");
  });
  it("puts the band edges where the README does", () => {
    expect([0.0999, 0.1, 0.2499, 0.25].map(driftStatus)).toEqual(["stable", "shifting", "shifting", "drifted"]);
  });
  it("keeps the first `limit` rows", () => {
    const psi = Object.fromEntries(Array.from({ length: 30 }, (_, i) => ["f" + i, i / 100]));
    const v = driftView({ rows: 5, psi }, 20)!;
    expect(v.features.length).toBe(20);
    expect(v.features[0].feature).toBe("f29");
  });
  it("has no worst feature before any row, and no view without a report", () => {
    expect(driftView({ rows: 0, psi: {} })).toEqual({ rows: 0, features: [], worst: null });
    expect(driftView({ rows: 0, psi: { a: null } })!.worst).toBeNull();
    for (const bad of [null, undefined, 3, { psi: {} }, { rows: 1 }, { rows: 1, psi: null }]) expect(driftView(bad)).toBeNull();
  });
});
