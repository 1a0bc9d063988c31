// The customer list's range filters: a form of bounds, every active filter as a removable
// chip, and the same filters as segment conditions. The names are the API's query parameters,
// so the URL, the request and a saved segment say the same thing (the server maps them to
// conditions the same way: RangeFilters.conditions in clm/lifecycle/customer_list.py).
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { label, money, number, thousands } from "../lib/format.js";
import { historyChips } from "./customer-history.js";

// kind: how a bound is typed and shown. P(alive) is a fraction in the URL, a percent here.
const RANGES = [
  { key: "health_score", title: "Health score", kind: "score" },
  { key: "p_alive", title: "P(alive) %", kind: "share" },
  { key: "clv", title: "CLV (12 mo)", kind: "money" },
  { key: "revenue", title: "Revenue", kind: "money" },
  { key: "purchases", title: "Purchases", kind: "count" },
];
const LIMITS = { score: [0, 100, "any"], share: [0, 100, "any"], money: [undefined, undefined, "any"], count: [0, undefined, 1] };
export const RANGE_PARAMS = [...RANGES.flatMap((r) => [`${r.key}_min`, `${r.key}_max`]), "seen_from", "seen_to", "unseen_days"];
const HEALTH = { happy: "happy and stable", at_risk: "happy but at risk", unhappy: "unhappy" };

// The range parameters present in the URL, as text.
export function rangesOf(params) {
  const found = {};
  for (const name of RANGE_PARAMS) if (params.get(name)) found[name] = params.get(name);
  return found;
}

// The ranges as conditions of the condition language, in the server's order.
export function rangeConditions(view) {
  const conditions = [];
  for (const r of RANGES) {
    if (view[`${r.key}_min`]) conditions.push({ attr: r.key, op: "gte", value: Number(view[`${r.key}_min`]) });
    if (view[`${r.key}_max`]) conditions.push({ attr: r.key, op: "lte", value: Number(view[`${r.key}_max`]) });
  }
  if (view.seen_from) conditions.push({ attr: "last_seen_date", op: "gte", value: view.seen_from });
  if (view.seen_to) conditions.push({ attr: "last_seen_date", op: "lte", value: view.seen_to });
  if (view.unseen_days) conditions.push({ attr: "last_seen_days", op: "gte", value: Number(view.unseen_days) });
  return conditions;
}

function shown(kind, text) {
  const value = Number(text);
  if (kind === "money") return money(value);
  if (kind === "share") return `${number(value * 100)}%`;
  if (kind === "count") return thousands(value);
  return number(value);
}

function between(title, low, high) {
  if (low && high) return `${title} ${low} to ${high}`;
  return low ? `${title} ≥ ${low}` : `${title} ≤ ${high}`;
}

// Every active filter in words, with the parameters removing it clears.
export function chipsOf(view) {
  const chips = [];
  if (view.q) chips.push({ clear: ["q"], text: `Search “${view.q}”` });
  if (view.stage) chips.push({ clear: ["stage"], text: `Stage: ${view.stage.split(",").map(label).join(" or ")}` });
  if (view.health_state) chips.push({ clear: ["health_state"], text: `Health: ${view.health_state.split(",").map((s) => HEALTH[s] || s).join(" or ")}` });
  for (const r of RANGES) {
    const [low, high] = [view[`${r.key}_min`], view[`${r.key}_max`]];
    if (!low && !high) continue;
    const title = r.title.replace(" %", "");
    chips.push({ clear: [`${r.key}_min`, `${r.key}_max`], text: between(title, low && shown(r.kind, low), high && shown(r.kind, high)) });
  }
  if (view.seen_from || view.seen_to) {
    const text = view.seen_from && view.seen_to ? `Last seen ${view.seen_from} to ${view.seen_to}`
      : view.seen_from ? `Last seen on or after ${view.seen_from}` : `Last seen on or before ${view.seen_to}`;
    chips.push({ clear: ["seen_from", "seen_to"], text });
  }
  if (view.unseen_days) {
    const days = Number(view.unseen_days);
    chips.push({ clear: ["unseen_days"], text: `Not seen for ${thousands(days)} ${days === 1 ? "day" : "days"}` });
  }
  return [...chips, ...historyChips(view)];
}

export function FilterChips({ view, show }) {
  const chips = chipsOf(view);
  if (!chips.length) return null;
  const clearAll = Object.fromEntries(chips.flatMap((c) => c.clear).map((name) => [name, ""]));
  return html`<ul class="chips" id="filter-chips" aria-label="Active filters">
    ${chips.map((c) => html`<li class="chip"><span>${c.text}</span>
      <button type="button" class="chip-remove" aria-label=${`Remove filter: ${c.text}`} title="Remove this filter"
        onClick=${() => show(Object.fromEntries(c.clear.map((name) => [name, ""])))}>×</button></li>`)}
    ${chips.length > 1 ? html`<li><button type="button" class="link" id="clear-filters" onClick=${() => show(clearAll)}>Clear all</button></li>` : null}
  </ul>`;
}

// The input's text for a URL value (P(alive) as a percent), and back.
const toInput = (kind, text) => (text && kind === "share" ? String(Math.round(Number(text) * 1e6) / 1e4) : text || "");
const fromInput = (kind, text) => (text.trim() && kind === "share" ? String(Number(text) / 100) : text.trim());

// Field errors of the list's 422 by parameter name ({clv_max: "is below the lower bound (50)"}).
function fieldErrors(error) {
  const found = {};
  for (const e of error?.errors || []) if (e.loc[0] === "query" && e.loc[1]) found[e.loc[1]] = e.message;
  return found;
}

function Bound({ name, text, kind, value, problem: said }) {
  const [min, max, step] = LIMITS[kind] || [];
  // The API bounds a fraction and names the lower bound as one; this field takes a percent.
  const problem = !said || kind !== "share" ? said
    : said.startsWith("is below the lower bound")
      ? said.replace(/\(([^)]+)\)$/, (_, bound) => `(${toInput(kind, bound)}%)`)
      : "a percent from 0 to 100";
  return html`<label>${text}
    <input id=${`range-${name}`} name=${name} type="number" inputmode="decimal" min=${min} max=${max} step=${step}
      defaultValue=${toInput(kind, value)} aria-invalid=${problem ? "true" : undefined}
      aria-describedby=${problem ? `range-${name}-error` : undefined} />
    ${problem ? html`<span class="error field-error" id=${`range-${name}-error`}>${problem}</span>` : null}
  </label>`;
}

// The bounds form: applied on submit (Enter in any field), so typing sends no requests.
export function RangeForm({ view, show, error }) {
  const active = RANGE_PARAMS.some((name) => view[name]);
  const [open, setOpen] = useState(active);
  const problems = fieldErrors(error);
  const apply = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const change = {};
    for (const r of RANGES) {
      for (const end of ["min", "max"]) change[`${r.key}_${end}`] = fromInput(r.kind, form[`${r.key}_${end}`].value);
    }
    for (const name of ["seen_from", "seen_to", "unseen_days"]) change[name] = form[name].value.trim();
    show(change);
  };
  const clear = () => show(Object.fromEntries(RANGE_PARAMS.map((name) => [name, ""])));
  // key: the inputs are uncontrolled; a new URL (back button, a removed chip) refills them.
  const key = RANGE_PARAMS.map((name) => view[name] || "").join("|");
  return html`<details class="ranges" id="range-filters" open=${open || Object.keys(problems).length > 0}
    onToggle=${(e) => setOpen(e.currentTarget.open)}>
    <summary>More filters${active ? ` (${rangeConditions(view).length})` : ""}</summary>
    <form id="range-form" key=${key} onSubmit=${apply} noValidate>
      <div class="range-grid">
        ${RANGES.map((r) => html`<fieldset class="range">
          <legend>${r.title}</legend>
          <${Bound} name=${`${r.key}_min`} text="from" kind=${r.kind} value=${view[`${r.key}_min`]} problem=${problems[`${r.key}_min`]} />
          <${Bound} name=${`${r.key}_max`} text="to" kind=${r.kind} value=${view[`${r.key}_max`]} problem=${problems[`${r.key}_max`]} />
        </fieldset>`)}
        <fieldset class="range">
          <legend>Last seen</legend>
          ${["seen_from", "seen_to"].map((name) => html`<label>${name === "seen_from" ? "from" : "to"}
            <input id=${`range-${name}`} name=${name} type="date" defaultValue=${view[name] || ""}
              aria-invalid=${problems[name] ? "true" : undefined} />
            ${problems[name] ? html`<span class="error field-error">${problems[name]}</span>` : null}</label>`)}
        </fieldset>
        <fieldset class="range">
          <legend>Gone quiet</legend>
          <${Bound} name="unseen_days" text="not seen for (days)" kind="count" value=${view.unseen_days} problem=${problems.unseen_days} />
        </fieldset>
      </div>
      <div class="toolbar">
        <button type="submit" id="apply-ranges">Apply</button>
        <button type="button" class="secondary" id="clear-ranges" disabled=${!active} onClick=${clear}>Clear ranges</button>
      </div>
    </form>
  </details>`;
}
