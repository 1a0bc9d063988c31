// Segments: saved filters of the customer list. The list with sizes and a sparkline; a
// segment's page with its conditions, size over time, members (paged and sorted by the
// database) and CSV; and the "Save as segment" form the Customers page shows.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api, download, query } from "../lib/api.js";
import { useApi, status } from "../lib/hooks.js";
import { Chart } from "../lib/chart.js";
import { day, label, money, number, pct, thousands } from "../lib/format.js";
import { navigate as go } from "../lib/router.js";
import { rangeConditions } from "./customer-filters.js";
import { SegmentEditor } from "./segment-editor.js";
import { CustomerTable } from "./customer-table.js";
import { can } from "../lib/access.js";

const HEALTH = { happy: "happy and stable", at_risk: "happy but at risk", unhappy: "unhappy" };
const NUMBERS = { health_score: "health score", p_alive: "P(alive)", clv: "CLV (12 mo)", revenue: "revenue", purchases: "purchases" };
const SYMBOL = { eq: "=", ne: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤" };

function shown(attr, value) {
  if (attr === "health") return HEALTH[value] || value;
  if (attr === "p_alive") return pct(value);
  if (attr === "clv" || attr === "revenue") return money(value);
  if (typeof value === "number") return number(value);
  return attr === "stage" ? label(value) : JSON.stringify(value);
}

// One condition in words: "stage is churned", "last seen more than 30 days ago".
export function conditionText({ attr, op, value }) {
  const name = attr.startsWith("traits.") ? attr.slice(7) : NUMBERS[attr] || attr.replaceAll("_", " ");
  if (attr === "search") return `name, email or id contains "${value}"`;
  if (op === "exists") return attr === "last_seen_days" ? "has been seen" : `has a ${name}`;
  if (attr === "last_seen_days") {
    const days = `${number(value)} ${value === 1 ? "day" : "days"} ago`;
    return { gt: `last seen more than ${days}`, gte: `last seen ${days} or earlier`, lt: `last seen less than ${days}`,
             lte: `last seen ${days} or later`, eq: `last seen exactly ${days}`, ne: `not last seen ${days}` }[op];
  }
  if (attr === "last_seen_date") {
    return { gt: `last seen after ${value}`, gte: `last seen on or after ${value}`, lt: `last seen before ${value}`,
             lte: `last seen on or before ${value}`, eq: `last seen on ${value}`, ne: `not last seen on ${value}` }[op];
  }
  if (op === "in") return `${name} is ${value.map((v) => shown(attr, v)).join(" or ")}`;
  if (op === "eq") return `${name} is ${shown(attr, value)}`;
  if (op === "ne") return `${name} is not ${shown(attr, value)}`;
  return `${name} ${SYMBOL[op] || op} ${shown(attr, value)}`;
}

const Conditions = ({ conditions }) => html`<ul class="plain conditions">
  ${conditions.map((c) => html`<li>${conditionText(c)}</li>`)}
</ul>`;

// The customer list's filters as conditions: q, stage, health state and the ranges.
export function filtersToConditions(view) {
  const conditions = [];
  if (view.q) conditions.push({ attr: "search", op: "contains", value: view.q });
  if (view.stage) conditions.push({ attr: "stage", op: "in", value: view.stage.split(",") });
  if (view.health_state) conditions.push({ attr: "health", op: "in", value: view.health_state.split(",") });
  return [...conditions, ...rangeConditions(view)];
}

function problems(error) {
  if (!error) return null;
  const lines = (error.errors || []).map((e) => {
    const where = e.loc.filter((part) => part !== "body");
    return `${where.join(" ")}: ${e.message}`;
  });
  return html`<div class="error" role="alert"><p>${error.message}</p>
    ${lines.length ? html`<ul>${lines.map((l) => html`<li>${l}</li>`)}</ul>` : null}</div>`;
}

// "Save as segment" on the Customers page: names the current filters and saves them.
export function SaveSegment({ view }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const conditions = filtersToConditions(view);
  if (!can("segment.save")) return null;
  if (!open) {
    return html`<button type="button" class="secondary" id="save-segment" disabled=${!conditions.length}
      title=${conditions.length ? "Save these filters as a named segment" : "Filter the list first"}
      onClick=${() => { setOpen(true); setTimeout(() => document.getElementById("segment-name")?.focus()); }}>Save as segment</button>`;
  }
  // Not a <form>: it sits inside the list's search form, so Enter in a field saves here.
  const save = async () => {
    const name = document.getElementById("segment-name").value;
    const description = document.getElementById("segment-description").value;
    if (!name.trim()) {
      setError({ message: "Give the segment a name.", errors: [] });
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const saved = await api("/segments", { method: "POST", body: { name, description, conditions } });
      go(`/segments/${saved.id}`);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  const onKey = (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      save();
    }
  };
  // Closing hands the keyboard back to the button that opened the form, not the page's start.
  const close = () => {
    setOpen(false);
    setError(null);
    setTimeout(() => document.getElementById("save-segment")?.focus());
  };
  const onEscape = (event) => {
    if (event.key === "Escape") close();
  };
  return html`<div class="panel save-segment" id="save-segment-form" role="group" aria-labelledby="save-segment-title" onKeyDown=${onEscape}>
    <h2 id="save-segment-title">Save as segment</h2>
    <${Conditions} conditions=${conditions} />
    <div class="toolbar">
      <label>Name <input id="segment-name" maxlength="100" autofocus onKeyDown=${onKey} /></label>
      <label>Description <input id="segment-description" maxlength="2000" onKeyDown=${onKey} /></label>
      <button type="button" id="save-segment-confirm" disabled=${busy} onClick=${save}>Save</button>
      <button type="button" class="secondary" id="save-segment-cancel" onClick=${close}>Cancel</button>
    </div>
    ${problems(error)}
  </div>`;
}

// Size over time as a step line (a size holds until the next point), carried to today.
// A backfilled history starts at its first member: zero the day before.
function sizeSeries(points, backfilled = false) {
  if (!points.length) return [];
  const data = points.map((p) => [p.day, p.size]);
  if (backfilled && data[0][1] > 0) {
    const before = new Date(Date.parse(data[0][0]) - 86400000).toISOString().slice(0, 10);
    data.unshift([before, 0]);
  }
  const today = new Date().toISOString().slice(0, 10);
  if (data[data.length - 1][0] < today) data.push([today, data[data.length - 1][1]]);
  return data;
}

function Sparkline({ id }) {
  const sizes = useApi(`/segments/${id}/sizes`);
  const data = sizeSeries(sizes.data?.points || [], sizes.data?.backfilled);
  if (!sizes.data) return status(sizes) || null;
  const option = {
    grid: { left: 2, right: 2, top: 4, bottom: 4 },
    xAxis: { type: "time", show: false },
    yAxis: { type: "value", show: false, min: 0 },
    tooltip: { show: false },
    series: [{ type: "line", step: "end", data, symbol: "none", lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.15 } }],
  };
  return html`<${Chart} id=${`spark-${id}`} option=${option} height=${36} />`;
}

// The list shows each segment's latest recorded size (one a day, and at each save); say its
// day when it is not today's.
const recordedBefore = (s) => s.size_as_of && s.size_as_of < new Date().toISOString().slice(0, 10);

function SegmentList() {
  const segments = useApi("/segments");
  return html`<section id="segments" class="page">
    <h1>Segments</h1>
    <p class="muted">Saved filters of the customer list. Filter the <a href="/customers">customers</a> and choose “Save as segment”; a segment is also a playbook trigger (<code>segment_entered</code>) and a report filter.</p>
    ${status(segments)}
    ${segments.data && (segments.data.length === 0
      ? html`<p class="muted" id="no-segments">No segment saved yet.</p>`
      : html`<div class="table-wrap"><table id="segment-table">
        <thead><tr><th>Segment</th><th class="num">Customers</th><th>Over time</th></tr></thead>
        <tbody>${segments.data.map((s) => html`<tr>
          <td class="wrap"><a href=${`/segments/${s.id}`}>${s.name}</a>${s.description ? html` <span class="muted">· ${s.description}</span>` : null}
            <br /><span class="muted small">${s.conditions.map(conditionText).join("; ")}</span></td>
          <td class="num">${thousands(s.size)}${recordedBefore(s) ? html`<br /><span class="muted small" title="the latest recorded size; the segment's page counts now">on ${s.size_as_of}</span>` : null}</td>
          <td class="spark"><${Sparkline} id=${s.id} /></td>
        </tr>`)}</tbody></table></div>`)}
  </section>`;
}

function historyNote(sizes) {
  if (!sizes.history_from) return "";
  return sizes.backfilled
    ? `Worked out from the stage and health history (the first member on ${sizes.history_from}; none before); from the save on, recorded once a day.`
    : `History starts on ${sizes.history_from}, when the segment was saved: its conditions read more than the stage and health history, so earlier sizes are not known. Recorded once a day.`;
}

function SegmentPage({ id, params }) {
  const view = { sort: params.get("sort") || "id", order: params.get("order") || "asc", page: Number(params.get("page") || 1), per_page: 50 };
  const segment = useApi(`/segments/${id}`);
  const sizes = useApi(`/segments/${id}/sizes`);
  const list = useApi(`/segments/${id}/members${query(view)}`);
  const [error, setError] = useState(null);
  const editing = params.get("edit") === "1" && can("segment.edit");
  const at = (change) => go(`/segments/${id}${query({ ...view, per_page: undefined, ...change })}`);
  const edited = (saved) => {
    if (saved) {
      segment.reload();
      sizes.reload();
      list.reload();
    }
    at({ edit: undefined });
  };
  const sortBy = (key) => at({ sort: key, order: view.sort === key && view.order === "desc" ? "asc" : "desc", page: 1 });
  const remove = async () => {
    if (!confirm(`Delete segment “${segment.data.name}”?`)) return;
    try {
      await api(`/segments/${id}`, { method: "DELETE" });
      go("/segments");
    } catch (failure) {
      setError(failure);
    }
  };
  if (!segment.data) return html`<section class="page"><h1>Segment</h1>${status(segment)}</section>`;
  const s = segment.data;
  const data = list.data;
  const series = sizeSeries(sizes.data?.points || [], sizes.data?.backfilled);
  const DAY_MS = 86400000;
  const first = series.length ? Date.parse(series[0][0]) : Date.now();
  const option = {
    grid: { left: 48, right: 16, top: 16, bottom: 32 },
    // Days, and at least the last week: one day's point alone would stretch over hours.
    xAxis: { type: "time", minInterval: DAY_MS, min: Math.min(first, Date.now() - 7 * DAY_MS),
             axisLabel: { formatter: "{yyyy}-{MM}-{dd}", hideOverlap: true } },
    yAxis: { type: "value", min: 0, minInterval: 1, axisLabel: { formatter: (v) => thousands(v) } },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${thousands(v)} customers` },
    series: [{ name: "customers", type: "line", step: "end", data: series, symbol: series.length > 40 ? "none" : "circle", areaStyle: { opacity: 0.12 } }],
  };
  return html`<section id="segment" class="page">
    <p><a href="/segments">← Segments</a></p>
    <h1 id="segment-name-title">${s.name}</h1>
    ${s.description ? html`<p>${s.description}</p>` : null}
    ${editing ? html`<${SegmentEditor} key=${s.updated_at} segment=${s} onDone=${edited} />` : null}
    <div class="panels">
      ${editing ? null : html`<div class="panel">
        <h2>Conditions</h2>
        <${Conditions} conditions=${s.conditions} />
        <dl class="facts small">
          <dt>Customers now</dt><dd id="segment-size">${thousands(s.size)}</dd>
          <dt>Saved by</dt><dd>${s.created_by} on ${day(s.created_at)}</dd>
          <dt>Use it</dt><dd>playbook trigger <code>segment: ${s.name}</code>; report filter <code>saved_segment</code></dd>
        </dl>
        <div class="toolbar" style="margin-top:.75rem">
          ${can("segment.edit") ? html`<button type="button" id="edit-segment" onClick=${() => at({ edit: 1 })}>Edit conditions</button>` : null}
          <a class="button secondary" href=${`/reports?saved_segment=${encodeURIComponent(s.name)}`}>Reports for this segment</a>
          ${can("segment.delete") ? html`<button type="button" class="secondary" id="delete-segment" disabled=${s.used_by.length > 0}
            title=${s.used_by.length ? `Playbook ${s.used_by.join(", ")} triggers on it` : "Delete this segment"} onClick=${remove}>Delete</button>` : null}
        </div>
        ${s.used_by.length ? html`<p class="muted small" id="segment-used-by">Playbook ${s.used_by.join(", ")} triggers on it: it keeps its name and cannot be deleted while that playbook is active or paused.</p>` : null}
        ${problems(error)}
      </div>`}
      <div class="panel">
        <h2>Size over time</h2>
        ${status(sizes)}
        ${sizes.data && html`<${Chart} id="segment-sizes" option=${option} height=${240} />
          <p class="muted small" id="history-note">${historyNote(sizes.data)}</p>`}
      </div>
    </div>
    <div class="toolbar">
      <h2 style="flex:1" id="member-count">${data ? `${thousands(data.total)} ${data.total === 1 ? "member" : "members"}` : "Members"}</h2>
      <button type="button" class="secondary" id="export-segment" onClick=${() => download(`/segments/${id}/members.csv${query({ sort: view.sort, order: view.order })}`, `segment-${s.name}.csv`)}>Export CSV</button>
    </div>
    ${status(list)}
    ${data && html`<${CustomerTable} id="member-table" data=${data} view=${view} sortBy=${sortBy} pageTo=${(page) => at({ page })} />`}
  </section>`;
}

export function Segments({ id, params }) {
  return id ? html`<${SegmentPage} key=${id} id=${id} params=${params} />` : html`<${SegmentList} />`;
}
