// The table of customers the Customers page and a segment's members share: one row per
// customer, sortable headers (the database sorts), the pager, and at 400 px each row as a card
// (the .stack styles), so both lists read the same on a phone.
import { html } from "../lib/html.js";
import { NO_REPEAT, customerName, day, label, money, pAlive, score, thousands } from "../lib/format.js";

const COLUMNS = [
  { key: "id", title: "Customer", sort: "id" },
  { key: "stage", title: "Stage", sort: "stage" },
  { key: "health", title: "Health", sort: "health_score" },
  { key: "p_alive", title: "P(alive)", sort: "p_alive", num: true },
  { key: "clv", title: "CLV (12 mo)", sort: "clv", num: true },
  { key: "purchases", title: "Purchases", sort: "purchases", num: true },
  { key: "last_seen", title: "Last seen", sort: "last_seen" },
  { key: "reasons", title: "Top reasons" },
];

// ``data`` is a page of /customer-list (or of a segment's members), ``view`` its sort, order
// and page; ``sortBy(key)`` and ``pageTo(n)`` change the URL.
export function CustomerTable({ id, data, view, sortBy, pageTo }) {
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  const arrow = (c) => (view.sort === c.sort ? (view.order === "desc" ? " ↓" : " ↑") : "");
  return html`<div class="table-wrap"><table id=${id} class="stack sortable">
      <thead><tr>${COLUMNS.map((c) => html`<th class=${[c.num ? "num" : "", c.sort ? "" : "nosort"].join(" ").trim()} aria-sort=${c.sort && view.sort === c.sort ? (view.order === "desc" ? "descending" : "ascending") : undefined}>
        ${c.sort ? html`<button type="button" class="sort" onClick=${() => sortBy(c.sort)}>${c.title}${arrow(c)}</button>` : c.title}</th>`)}</tr></thead>
      <tbody>${data.items.map((c) => html`<tr>
        <td><a href=${`/customers/${c.id}`}>${customerName(c)}</a><br /><span class="muted">${[`#${c.id}`, ...[c.user_id, c.email].filter((v) => v && v !== customerName(c))].join(" · ")}</span></td>
        <td data-label="stage">${c.stage ? html`<span class="pill">${label(c.stage)}</span>` : "–"}</td>
        <td data-label="health">${c.health_state ? html`<span class=${`pill ${c.health_state}`}>${c.health_label}</span> ${score(c.health_score)}` : "–"}</td>
        <td data-label="P(alive)" class="num" title=${c.p_alive === 1 ? NO_REPEAT : undefined}>${pAlive(c.p_alive)}</td>
        <td data-label="CLV (12 mo)" class="num">${money(c.clv)}</td>
        <td data-label="purchases" class="num">${thousands(c.purchases)}</td>
        <td data-label="last seen">${day(c.last_seen_at)}</td>
        <td data-label=${c.reasons.length ? "top reasons" : undefined} class="wrap">${c.reasons.join("; ")}</td>
      </tr>`)}</tbody></table>
      ${data.items.length === 0 ? html`<p id=${`${id}-empty`} class="muted empty" role="status">${data.total
        ? `Nothing on page ${thousands(view.page)}: the list has ${thousands(pages)} ${pages === 1 ? "page" : "pages"}.`
        : "No customer matches these filters."}</p>` : null}</div>
    <nav class="pager" aria-label="Pages">
      <button type="button" class="secondary" disabled=${view.page <= 1} onClick=${() => pageTo(view.page - 1)}>Previous</button>
      <span>Page ${thousands(view.page)} of ${thousands(pages)}</span>
      <button type="button" class="secondary" disabled=${view.page >= pages} onClick=${() => pageTo(view.page + 1)}>Next</button>
    </nav>`;
}
