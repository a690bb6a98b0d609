import { describe, expect, it } from "vitest";
import { smsCounter, smsSegments } from "../../src/sms";

// The same cases the server's unit tests and the e2e limits rely on.
describe("smsSegments", () => {
  it("counts GSM-7 septets, 160 in one part, 153 per part after", () => {
    expect(smsSegments("")).toEqual({ gsm7: true, units: 0, segments: 0 });
    expect(smsSegments("x".repeat(160))).toEqual({ gsm7: true, units: 160, segments: 1 });
    expect(smsSegments("x".repeat(161)).segments).toBe(2);
    expect(smsSegments("x".repeat(1530)).segments).toBe(10);
    expect(smsSegments("x".repeat(1531)).segments).toBe(11);
  });
  it("counts the extension table twice", () => {
    expect(smsSegments("{}€").units).toBe(6);
    expect(smsSegments("{".repeat(80))).toEqual({ gsm7: true, units: 160, segments: 1 });
    expect(smsSegments("{".repeat(81)).segments).toBe(2);
  });
  it("switches to UCS-2 for any other character", () => {
    expect(smsSegments("Café é")).toEqual({ gsm7: true, units: 6, segments: 1 }); // é is in GSM-7
    expect(smsSegments("naïve")).toEqual({ gsm7: false, units: 5, segments: 1 }); // ï is not
    expect(smsSegments("中".repeat(70)).segments).toBe(1);
    expect(smsSegments("中".repeat(71)).segments).toBe(2);
    expect(smsSegments("é中".repeat(336))).toEqual({ gsm7: false, units: 672, segments: 11 });
    expect(smsSegments("🏠")).toEqual({ gsm7: false, units: 2, segments: 1 }); // outside the BMP: two units
  });
  it("says it in words", () => {
    expect(smsCounter(smsSegments(""))).toBe("");
    expect(smsCounter(smsSegments("hi"))).toBe("1 part · 2/160 GSM-7");
    expect(smsCounter(smsSegments("x".repeat(170)))).toBe("2 parts · 170/306 GSM-7");
    expect(smsCounter(smsSegments("中"))).toBe("1 part · 1/70 Unicode");
  });
});
