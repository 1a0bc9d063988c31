// Numbers for people: thousands separators, percentages, currency, dates. One place, so every
// page writes 12,345 and 4.2% the same way.

const locale = undefined; // the browser's

const integer = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });

const DASH = "–";
const missing = (value) => value === null || value === undefined || Number.isNaN(Number(value));

export const thousands = (value) => (missing(value) ? DASH : integer.format(value));
export const number = (value) => (missing(value) ? DASH : decimal.format(value));
export const pct = (ratio) => (missing(ratio) ? DASH : percent.format(ratio));
export const short = (value) => (missing(value) ? DASH : compact.format(value));
// A health score (0-100) is read as a whole number: 16, not 15.52 (-0 is 0).
export const score = (value) => (missing(value) ? DASH : integer.format(Math.round(value) || 0));

// A signed difference: "+3", "−12" with the minus sign (U+2212), not a hyphen, whatever the
// locale writes; no sign when it rounds to zero ("exceptZero").
const MINUS = "\u2212";
const signedFormat = (digits) => new Intl.NumberFormat(locale, { maximumFractionDigits: digits, signDisplay: "exceptZero" });
const signedWhole = signedFormat(0);
const signedTenths = signedFormat(1);
const withMinus = (format, value) => format.formatToParts(value).map((p) => (p.type === "minusSign" ? MINUS : p.value)).join("");
const signedDecimal = signedFormat(2);
export const difference = (value) => (missing(value) ? DASH : withMinus(signedWhole, value));
// A signed value with decimals: an NPS (−100 to +100), a sentiment.
export const signedNumber = (value) => (missing(value) ? DASH : withMinus(signedDecimal, value));
export const scoreChange = (value) => (missing(value) ? DASH : withMinus(signedWhole, Math.round(value) || 0));
// A difference of two shares (ratios) in percentage points: 0.05 - 0.176 is "−12.6 pp", not
// "-12.6%" (that would be a change relative to the share).
export const percentagePoints = (ratio) => (missing(ratio) ? DASH : `${withMinus(signedTenths, 100 * ratio)} pp`);

const currencies = new Map();
export function money(value, currency = "USD") {
  if (missing(value)) return DASH;
  if (!currencies.has(currency)) {
    currencies.set(currency, new Intl.NumberFormat(locale, { style: "currency", currency, maximumFractionDigits: 0 }));
  }
  return currencies.get(currency).format(value);
}

export const day = (iso) => (iso ? String(iso).slice(0, 10) : DASH);
export const minute = (iso) => (iso ? String(iso).slice(0, 16).replace("T", " ") : DASH);

// "now" for a state computed at the present moment, else "as of <date>".
export function asOf(at) {
  const when = Date.parse(at || "");
  if (Number.isNaN(when) || Math.abs(Date.now() - when) < 5 * 60 * 1000) return "now";
  return `as of ${new Date(when).toISOString().slice(0, 10)}`;
}

// P(alive) exactly 1 means no repeat purchase day: BG/NBD lets a customer drop out only right
// after a repeat purchase, so it gives every one-time buyer 100% however long ago they bought
// (other models never reach 1). Lists say so instead of a 100% nobody should trust.
export const NO_REPEAT = "One purchase day: the model gives every one-time buyer P(alive) 100%, so it cannot tell. Read Last seen instead.";
export const pAlive = (value) => (value === 1 ? "no repeat yet" : pct(value));

// A customer as lists name them: name, else email, else their id in your systems.
export const customerName = (c) => c.name || c.email || c.user_id || `#${c.id}`;

export const label = (name) => (name ? String(name).replaceAll("_", " ") : DASH);

// A stored object's entries by key. SQLite keeps the sender's key order, PostgreSQL (jsonb)
// orders keys by length: listed by key, traits and event properties read the same on both.
export const byKey = (object) => Object.entries(object || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
