import { describe, expect, it } from "vitest";
import { ago, duration, humanize, initials, leadName, money, moneyRange, pct, phone, score100, scoreBand, signed, bytes } from "../../src/format";

describe("format", () => {
  it("scores", () => {
    expect(score100(0.384)).toBe("38");
    expect(score100(null)).toBe("—");
    expect(score100(Number.NaN)).toBe("—");
    expect(pct(0.25)).toBe("25%");
    expect(pct(undefined)).toBe("—");
    expect(scoreBand(0.71)).toBe("hot");
    expect(scoreBand(0.7)).toBe("hot");
    expect(scoreBand(0.5)).toBe("warm");
    expect(scoreBand(0.1)).toBe("cool");
    expect(scoreBand(null)).toBe("none");
    expect(scoreBand(0.65, 0.6)).toBe("hot");
  });
  it("money", () => {
    expect(money(450000)).toBe("$450,000");
    expect(money(450000, true)).toBe("$450k");
    expect(money(1250000, true)).toBe("$1.3M");
    expect(money(262500, true)).toBe("$263k");
    expect(money(999, true)).toBe("$999");
    expect(moneyRange(210000, 262500)).toBe("$210k–$263k");
    expect(moneyRange(null, 300000)).toBe("up to $300k");
    expect(moneyRange(undefined, undefined)).toBe("—");
  });
  it("relative times", () => {
    const now = 1_800_000_000_000;
    expect(ago(now - 10_000, now)).toBe("just now");
    expect(ago(now - 5 * 60_000, now)).toBe("5 min ago");
    expect(ago(now - 3 * 3600_000, now)).toBe("3 h ago");
    expect(ago(now - 2 * 86400_000, now)).toBe("2 d ago");
    expect(ago(now + 60_000, now)).toBe("in the future");
    expect(ago(null, now)).toBe("—");
    expect(duration(42)).toBe("42 s");
    expect(duration(600)).toBe("10 min");
    expect(duration(5400)).toBe("1.5 h");
    expect(duration(172800)).toBe("2 d");
  });
  it("names and phones", () => {
    expect(phone("+19165550101")).toBe("(916) 555-0101");
    expect(phone("+442071838750")).toBe("+442071838750");
    expect(phone(null)).toBe("—");
    expect(leadName({ first_name: "Kara", last_name: "Müller" })).toBe("Kara Müller");
    expect(leadName({ email: "a@b.test" })).toBe("a@b.test");
    expect(leadName({ phone: "+19165550101" })).toBe("(916) 555-0101");
    expect(leadName({ id: 7 })).toBe("Lead #7");
    expect(initials("Ana  de Silva")).toBe("AD");
    expect(humanize("budget_vs_area")).toBe("Budget vs area");
    expect(signed(8)).toBe("+8");
    expect(signed(-0.123)).toBe("−0.12");
    expect(bytes(2048)).toBe("2 KB");
  });
});
