// How an SMS travels, as the server counts it (src/nurture/template.c,
// nurture_sms_segments): GSM-7 while every character is in the GSM 03.38
// basic set (one septet) or its extension table (two), 160 septets in one
// message, 153 per part when split; otherwise UCS-2, 70 UTF-16 units, 67
// per part. The composer shows it so the agent sees what a reply costs.

const GSM_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXT = "\f^{}\\[~]|€";

export interface SmsInfo {
  gsm7: boolean;
  units: number; // septets (GSM-7) or UTF-16 units (UCS-2)
  segments: number; // 0 for an empty body
}

/** The server refuses a one-off SMS over this many parts (README "One-off messages"). */
export const SMS_MAX_SEGMENTS = 10;

export function smsSegments(body: string): SmsInfo {
  let septets = 0;
  let units = 0;
  let gsm = true;
  for (const ch of body) {
    units += ch.length; // 2 for a character outside the BMP
    if (GSM_BASIC.includes(ch)) septets += 1;
    else if (GSM_EXT.includes(ch)) septets += 2;
    else gsm = false;
  }
  const n = gsm ? septets : units;
  const single = gsm ? 160 : 70;
  const part = gsm ? 153 : 67;
  return { gsm7: gsm, units: n, segments: n === 0 ? 0 : n <= single ? 1 : Math.ceil(n / part) };
}

/** "2 parts · 170/306 GSM-7" — the counter under the composer. */
export function smsCounter(info: SmsInfo): string {
  if (!info.segments) return "";
  const part = info.gsm7 ? (info.segments === 1 ? 160 : 153) : info.segments === 1 ? 70 : 67;
  const enc = info.gsm7 ? "GSM-7" : "Unicode";
  return `${info.segments} ${info.segments === 1 ? "part" : "parts"} · ${info.units}/${part * info.segments} ${enc}`;
}
