import { describe, expect, it } from "vitest";
import { compare, filterQuery, LeadTable, matches, type Lead } from "../../src/merge";

const lead = (id: number, o: Partial<Lead> = {}): Lead => ({ id, first_name: "L" + id, last_name: "X", status: "open", stage: "new", score: null, version: 1, created_at: id * 1000, agent_id: null, ...o });
let seq = 0;
const ev = (type: string, data: any, s = ++seq) => ({ seq: s, type, data });

describe("filters", () => {
  it("mirror the API's query parameters", () => {
    expect(filterQuery({ q: " ana ", status: "open", agent_id: 3, score_min: 0.7 })).toBe("q=ana&status=open&agent_id=3&score_min=0.7");
    expect(filterQuery({ q: "", status: "", agent_id: null })).toBe("");
  });
  it("match like the server", () => {
    const l = lead(1, { first_name: "Ana", last_name: "Silva", email: "ana@x.test", phone: "+19165550101", score: 0.5, agent_id: 2, tags: ["buyer"] });
    expect(matches(l, { q: "silva" })).toBe(true);
    expect(matches(l, { q: "ANA S" })).toBe(true);
    expect(matches(l, { q: "555-0101" })).toBe(true);
    expect(matches(l, { q: "bob" })).toBe(false);
    expect(matches(l, { score_min: 0.5 })).toBe(true);
    expect(matches(l, { score_min: 0.51 })).toBe(false);
    expect(matches({ ...l, score: null }, { score_min: 0.1 })).toBe(false);
    expect(matches(l, { agent_id: 2, status: "open", tag: "buyer" })).toBe(true);
    expect(matches(l, { status: "won" })).toBe(false);
  });
  it("sort by score puts unknown scores last", () => {
    const rows = [lead(1, { score: 0.2 }), lead(2), lead(3, { score: 0.9 }), lead(4, { score: 0.2 })];
    expect([...rows].sort(compare("score_desc")).map((l) => l.id)).toEqual([3, 4, 1, 2]);
    expect([...rows].sort(compare("score_asc")).map((l) => l.id)).toEqual([4, 1, 3, 2]);
    expect([...rows].sort(compare("newest")).map((l) => l.id)).toEqual([4, 3, 2, 1]);
  });
});

describe("live merge", () => {
  it("adds created leads, applies scores and assignments, removes deleted", () => {
    const t = new LeadTable({}, "score_desc");
    t.load([lead(1, { score: 0.3 }), lead(2, { score: 0.5 })]);
    expect(t.apply(ev("lead.created", lead(3)))).toEqual({ kind: "added", id: 3 });
    expect(t.apply(ev("lead.scored", { lead_id: 3, score: 0.8, previous: null }))).toEqual({ kind: "updated", id: 3 });
    expect(t.view().map((l) => l.id)).toEqual([3, 2, 1]);
    t.apply(ev("lead.assigned", { lead_id: 1, agent_id: 4, reason: "x" }));
    expect(t.get(1)!.agent_id).toBe(4);
    t.apply(ev("lead.updated", { lead: lead(1, { first_name: "Zed", agent_id: 4, version: 2 }), changed: ["first_name"] }));
    expect(t.get(1)!.first_name).toBe("Zed");
    expect(t.apply(ev("lead.deleted", { lead_id: 2 }))).toEqual({ kind: "removed", id: 2 });
    expect(t.view().map((l) => l.id)).toEqual([3, 1]);
  });
  it("ignores repeated and older seqs (a replay overlapping live events)", () => {
    const t = new LeadTable();
    t.load([lead(1)]);
    const e = ev("lead.scored", { lead_id: 1, score: 0.6 });
    t.apply(e);
    expect(t.apply(e)).toEqual({ kind: "none" });
    expect(t.apply({ ...ev("lead.scored", { lead_id: 1, score: 0.1 }), seq: e.seq - 1 })).toEqual({ kind: "none" });
    expect(t.get(1)!.score).toBe(0.6);
  });
  it("never lets an older version overwrite a newer one", () => {
    const t = new LeadTable();
    t.load([lead(1, { version: 5, first_name: "New" })]);
    t.apply(ev("lead.updated", { lead: lead(1, { version: 4, first_name: "Old" }) }));
    expect(t.get(1)!.first_name).toBe("New");
  });
  it("keeps what live events said over snapshot pages read before them", () => {
    const t = new LeadTable();
    t.reset();
    t.apply(ev("lead.scored", { lead_id: 7, score: 0.9 }));
    t.apply(ev("lead.deleted", { lead_id: 8 }));
    t.add([lead(7, { score: 0.2 }), lead(8), lead(9)]);
    expect(t.get(7)!.score).toBe(0.9);
    expect(t.get(8)).toBeUndefined();
    expect(t.view().map((l) => l.id).sort()).toEqual([7, 9]);
  });
  it("filters the view, and shows a lead once it starts to match", () => {
    const t = new LeadTable({ score_min: 0.7 });
    t.load([]);
    t.apply(ev("lead.created", lead(5)));
    expect(t.view()).toEqual([]);
    expect(t.visible(5)).toBe(false);
    t.apply(ev("lead.scored", { lead_id: 5, score: 0.75 }));
    expect(t.view().map((l) => l.id)).toEqual([5]);
  });
  it("handles 10,000+ rows", () => {
    const t = new LeadTable({}, "score_desc");
    const rows = Array.from({ length: 12000 }, (_, i) => lead(i + 1, { score: ((i * 7919) % 1000) / 1000 }));
    const t0 = Date.now();
    t.load(rows);
    const v = t.view();
    expect(v.length).toBe(12000);
    for (let i = 1; i < v.length; i++) expect((v[i - 1].score ?? -1) >= (v[i].score ?? -1)).toBe(true);
    t.apply(ev("lead.scored", { lead_id: 12000, score: 1 }));
    expect(t.view()[0].id).toBe(12000);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});
