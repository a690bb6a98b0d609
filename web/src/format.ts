// Formatting for the dashboard: scores, money, times, names. Pure functions
// (unit-tested in test/unit/format.test.ts).

export function pct(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return (v * 100).toFixed(digits) + "%";
}

/** A 0-1 score as a whole number out of 100 ("—" when unknown). */
export function score100(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return String(Math.round(v * 100));
}

export type ScoreBand = "hot" | "warm" | "cool" | "none";
export function scoreBand(v: number | null | undefined, hot = 0.7): ScoreBand {
  if (v === null || v === undefined || !Number.isFinite(v)) return "none";
  if (v >= hot) return "hot";
  if (v >= 0.4) return "warm";
  return "cool";
}

export function money(v: number | null | undefined, compact = false): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (compact) {
    const a = Math.abs(v);
    if (a >= 1e6) return "$" + trim(v / 1e6) + "M";
    if (a >= 1e3) return "$" + trim(v / 1e3) + "k";
  }
  return "$" + Math.round(v).toLocaleString("en-US");
}

function trim(x: number): string {
  const s = x.toFixed(x >= 100 || x <= -100 ? 0 : 1);
  return s.endsWith(".0") ? s.slice(0, -2) : s;
}

export function moneyRange(lo: number | null | undefined, hi: number | null | undefined): string {
  if (lo == null && hi == null) return "—";
  if (lo == null) return "up to " + money(hi, true);
  if (hi == null) return "from " + money(lo, true);
  return money(lo, true) + "–" + money(hi, true);
}

/** "just now", "5 min ago", "3 h ago", "2 d ago", then a date. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return "in the future";
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return m + " min ago";
  const h = Math.round(m / 60);
  if (h < 24) return h + " h ago";
  const d = Math.round(h / 24);
  if (d < 30) return d + " d ago";
  return date(ms);
}

export function date(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
}

export function dateTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const d = new Date(ms);
  return date(ms) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
}

function pad(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

/** Seconds as "45 s", "12 min", "3.5 h", "2 d". */
export function duration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return "—";
  if (sec < 60) return Math.round(sec) + " s";
  if (sec < 3600) return Math.round(sec / 60) + " min";
  if (sec < 86400) return trim(sec / 3600) + " h";
  return trim(sec / 86400) + " d";
}

/** +14155550101 → (415) 555-0101 for NANP numbers; others as given. */
export function phone(e164: string | null | undefined): string {
  if (!e164) return "—";
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164);
  return m ? `(${m[1]}) ${m[2]}-${m[3]}` : e164;
}

export interface Named {
  first_name?: string | null;
  last_name?: string | null;
  email?: string | null;
  phone?: string | null;
  id?: number;
}

export function leadName(l: Named): string {
  const n = [l.first_name, l.last_name].filter(Boolean).join(" ").trim();
  if (n) return n;
  if (l.email) return l.email;
  if (l.phone) return phone(l.phone);
  return l.id ? "Lead #" + l.id : "Unnamed lead";
}

export function initials(name: string): string {
  const parts = name.split(/\s+/).filter((p) => /\p{L}/u.test(p));
  const s = parts.slice(0, 2).map((p) => p[0]).join("");
  return (s || "?").toUpperCase();
}

/** feature_name → "Feature name". */
export function humanize(key: string): string {
  const s = key.replace(/[_.]+/g, " ").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** A signed effect: "+8", "−0.12". */
export function signed(v: number, digits = 2): string {
  const a = Math.abs(v);
  const s = Number.isInteger(a) ? String(a) : a.toFixed(digits);
  return (v < 0 ? "−" : "+") + s;
}

export function count(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US");
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return trim(n / 1024) + " KB";
  if (n < 1024 ** 3) return trim(n / 1024 / 1024) + " MB";
  return trim(n / 1024 ** 3) + " GB";
}
