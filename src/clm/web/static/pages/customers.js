// Customers: search, filter, sort and page (all in the database), CSV of the same query. The
// URL holds the whole view, so a filtered list is a link and the back button restores it.
import { useEffect } from "preact/hooks";
import { html } from "../lib/html.js";
import { download, query } from "../lib/api.js";
import { useApi, status } from "../lib/hooks.js";
import { label, thousands } from "../lib/format.js";
import { navigate as go } from "../lib/router.js";
import { CommitSelect } from "../lib/select.js";
import { SaveSegment } from "./segments.js";
import { FilterChips, RangeForm, rangesOf } from "./customer-filters.js";
import { hasHistory, historyOf } from "./customer-history.js";
import { CustomerTable } from "./customer-table.js";

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
  // After a big import the server serves the rows it had while it catches up: ask again.
  useEffect(() => {
    if (!data?.refreshing) return undefined;
    const timer = setTimeout(list.reload, 4000);
    return () => clearTimeout(timer);
  }, [data]);
  const sortBy = (key) => show({ sort: key, order: view.sort === key && view.order === "desc" ? "asc" : "desc" });
  const atRisk = view.health_state === "at_risk,unhappy";

  return html`<section id="customers" class="page">
    <h1>${atRisk ? "At-risk customers" : "Customers"}</h1>
    <form class="toolbar" role="search" onSubmit=${(e) => {
      e.preventDefault();
      const form = e.currentTarget;
      show({ q: form.q.value.trim(), stage: form.stage.value, health_state: form.health_state.value });
    }}>
      <label>Search <input id="customer-search" name="q" type="search" key=${view.q} defaultValue=${view.q} placeholder="name, email or id" /></label>
      <label>Stage <${CommitSelect} id="filter-stage" name="stage" value=${view.stage} commit=${(stage) => show({ stage })}>
        <option value="">any stage</option>
        ${stages.map((s) => html`<option value=${s}>${label(s)}</option>`)}
        ${view.stage && !stages.includes(view.stage) && html`<option value=${view.stage}>${label(view.stage)}</option>`}
      <//></label>
      <label>Health <${CommitSelect} id="filter-health" name="health_state" value=${view.health_state} commit=${(health_state) => show({ health_state })}>
        ${STATES.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
      <//></label>
      <button type="submit" id="customer-toolbar-search">Search</button>
      <button type="button" class="secondary" id="at-risk" onClick=${() => go(AT_RISK)}>At risk</button>
      <button type="button" class="secondary" id="export-csv" onClick=${() => download(`/customer-list.csv${query({ ...view, page: undefined, per_page: undefined })}`, "customers.csv")}>Export CSV</button>
      ${hasHistory(view) ? null : html`<${SaveSegment} view=${view} />`}
    </form>
    <${RangeForm} view=${view} show=${show} error=${list.error} />
    <${FilterChips} view=${view} show=${show} />
    <p id="customer-count" class="muted">${data ? `${thousands(data.total)} ${data.total === 1 ? "customer" : "customers"}` : ""}${data?.refreshing
      ? html` <span id="customer-refreshing">(refreshing after an import)</span>` : null}</p>
    ${status(list)}
    ${data && html`<${CustomerTable} id="customer-table" data=${data} view=${view} sortBy=${sortBy} pageTo=${(page) => go(url({ ...view, page }))} />`}
  </section>`;
}
