// A report table as the API lays it out ({title, columns, rows, kinds}), with CSV export
// built from the same rows: what you see is what you download.
import { html } from "./html.js";
import { money, number, pct, thousands } from "./format.js";

const NUMERIC = new Set(["count", "number", "money", "share", "percent", "days"]);

function cell(value, kind) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (kind === "share") return pct(value);
  if (kind === "percent") return `${number(value)}%`;
  if (kind === "money") return money(value); // whole units on screen; the CSV keeps cents
  if (kind === "count" || Number.isInteger(value)) return thousands(value);
  return number(value);
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(columns, rows) {
  return [columns, ...rows].map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
}

export function saveCsv(filename, columns, rows) {
  const blob = new Blob([toCsv(columns, rows)], { type: "text/csv" });
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

export function DataTable({ table, prefix }) {
  const kinds = table.kinds || [];
  const numeric = (i) => NUMERIC.has(kinds[i]) || table.rows.some((r) => typeof r[i] === "number");
  return html`<div class="panel report-table" data-table=${table.name}>
    <div class="toolbar">
      <h2 style="flex:1">${table.title}</h2>
      <button class="secondary csv" type="button" onClick=${() => saveCsv(`${prefix}-${table.name}.csv`, table.columns, table.rows)}>CSV</button>
    </div>
    ${table.rows.length === 0
      ? html`<p class="muted">No rows.</p>`
      : html`<div class="table-wrap"><table>
        <thead><tr>${table.columns.map((c, i) => html`<th class=${numeric(i) ? "num" : ""}>${c}</th>`)}</tr></thead>
        <tbody>${table.rows.slice(0, 500).map((row) => html`<tr>${row.map((v, i) => html`<td class=${numeric(i) ? "num" : ""}>${cell(v, kinds[i])}</td>`)}</tr>`)}</tbody>
      </table></div>`}
    ${table.rows.length > 500 ? html`<p class="muted">First 500 of ${thousands(table.rows.length)} rows shown; the CSV has them all.</p>` : null}
  </div>`;
}
