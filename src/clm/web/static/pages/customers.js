// Customers: search, filter, sort and page (all in the database), CSV of the same query. The
// URL holds the whole view, so a filtered list is a link and the back button restores it.
import { html } from "../lib/html.js";
import { download, query } from "../lib/api.js";
import { useApi, status } from "../lib/hooks.js";
import { NO_REPEAT, customerName, day, label, money, pAlive, score, thousands } from "../lib/format.js";
import { navigate as go } from "../lib/router.js";
import { SaveSegment } from "./segments.js";
import { FilterChips, RangeForm, rangesOf } from "./customer-filters.js";
import { hasHistory, historyOf } from "./customer-history.js";

const COLUMNS = [
  { key: "id", title: "Customer", sort: "id" },
  { key: "stage", title: "Stage", sort: "stage" },
  { key: "health", title: "Health", sort: "health_score" },
  { key: "p_alive", title: "P(alive)", sort: "p_alive", num: true },
  { key: "clv", title: "CLV (12 mo)", sort: "clv", num: true },
  { key: "last_seen", title: "Last seen", sort: "last_seen" },
  { key: "reasons", title: "Top reasons" },
];
const DEFAULTS = { q: "", stage: "", health_state: "", sort: "id", order: "asc", page: 1, per_page: 50 };
export const AT_RISK = "/customers?health_state=at_risk%2Cunhappy&sort=clv&order=desc";
const STATES = [["", "any health"], ["happy", "happy and stable"], ["at_risk", "happy but at risk"], ["unhappy", "unhappy"], ["at_risk,unhappy", "at risk or unhappy"]];

export function Customers({ params }) {
  const view = {
    q: params.get("q") || "",
    stage: params.get("stage") || "",
    health_state: params.get("health_state") || "",
    sort: params.get("sort") || "id",
    order: params.get("order") || "asc",
    page: Number(params.get("page") || 1),
    per_page: Number(params.get("per_page") || 50),
    ...rangesOf(params),
    ...historyOf(params),
  };
  const list = useApi(`/customer-list${query(view)}`);
  const model = useApi("/lifecycle/counts");
  const stages = Object.keys(model.data?.stages || {});
  // The URL keeps only what differs from the defaults, so links stay short and shareable.
  const url = (next) => {
    const trimmed = Object.fromEntries(Object.entries(next).filter(([k, v]) => v !== DEFAULTS[k]));
    return `/customers${query(trimmed)}`;
  };
  const show = (change) => go(url({ ...view, page: 1, ...change }));
  const data = list.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.per_page)) : 1;
  const sortBy = (key) => show({ sort: key, order: view.sort === key && view.order === "desc" ? "asc" : "desc" });
  const atRisk = view.health_state === "at_risk,unhappy";

  return html`<section id="customers" class="page">
    <h1>${atRisk ? "At-risk customers" : "Customers"}</h1>
    <form class="toolbar" role="search" onSubmit=${(e) => { e.preventDefault(); show({ q: e.currentTarget.q.value.trim() }); }}>
      <label>Search <input id="customer-search" name="q" type="search" key=${view.q} defaultValue=${view.q} placeholder="name, email or id" /></label>
      <label>Stage <select id="filter-stage" value=${view.stage} onChange=${(e) => show({ stage: e.currentTarget.value })}>
        <option value="">any stage</option>
        ${stages.map((s) => html`<option value=${s}>${label(s)}</option>`)}
        ${view.stage && !stages.includes(view.stage) && html`<option value=${view.stage}>${label(view.stage)}</option>`}
      </select></label>
      <label>Health <select id="filter-health" value=${view.health_state} onChange=${(e) => show({ health_state: e.currentTarget.value })}>
        ${STATES.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
      </select></label>
      <button type="submit">Search</button>
      <button type="button" class="secondary" id="at-risk" onClick=${() => go(AT_RISK)}>At risk</button>
      <button type="button" class="secondary" id="export-csv" onClick=${() => download(`/customer-list.csv${query({ ...view, page: undefined, per_page: undefined })}`, "customers.csv")}>Export CSV</button>
      ${hasHistory(view) ? null : html`<${SaveSegment} view=${view} />`}
    </form>
    <${RangeForm} view=${view} show=${show} error=${list.error} />
    <${FilterChips} view=${view} show=${show} />
    <p id="customer-count" class="muted">${data ? `${thousands(data.total)} ${data.total === 1 ? "customer" : "customers"}` : ""}</p>
    ${status(list)}
    ${data && html`<div class="table-wrap"><table id="customer-table" class="stack sortable">
      <thead><tr>${COLUMNS.map((c) => html`<th class=${[c.num ? "num" : "", c.sort ? "" : "nosort"].join(" ").trim()} aria-sort=${c.sort && view.sort === c.sort ? (view.order === "desc" ? "descending" : "ascending") : undefined}>
        ${c.sort ? html`<button type="button" class="sort" onClick=${() => sortBy(c.sort)}>${c.title}${view.sort === c.sort ? (view.order === "desc" ? " ↓" : " ↑") : ""}</button>` : c.title}</th>`)}</tr></thead>
      <tbody>${data.items.map((c) => html`<tr>
        <td><a href=${`/customers/${c.id}`}>${customerName(c)}</a><br /><span class="muted">${[`#${c.id}`, ...[c.user_id, c.email].filter((v) => v && v !== customerName(c))].join(" · ")}</span></td>
        <td data-label="stage">${c.stage ? html`<span class="pill">${label(c.stage)}</span>` : "–"}</td>
        <td data-label="health">${c.health_state ? html`<span class=${`pill ${c.health_state}`}>${c.health_label}</span> ${score(c.health_score)}` : "–"}</td>
        <td data-label="P(alive)" class="num" title=${c.p_alive === 1 ? NO_REPEAT : undefined}>${pAlive(c.p_alive)}</td>
        <td data-label="CLV (12 mo)" class="num">${money(c.clv)}</td>
        <td data-label="last seen">${day(c.last_seen_at)}</td>
        <td data-label=${c.reasons.length ? "top reasons" : undefined} class="wrap">${c.reasons.join("; ")}</td>
      </tr>`)}</tbody></table></div>
    <nav class="pager" aria-label="Pages">
      <button type="button" class="secondary" disabled=${view.page <= 1} onClick=${() => go(url({ ...view, page: view.page - 1 }))}>Previous</button>
      <span>Page ${thousands(view.page)} of ${thousands(pages)}</span>
      <button type="button" class="secondary" disabled=${view.page >= pages} onClick=${() => go(url({ ...view, page: view.page + 1 }))}>Next</button>
    </nav>`}
  </section>`;
}
