// Overview: the workspace at a glance. Counts now link to the customers behind them; the
// charts show the same counts over a date range kept in the URL (?since=&until=&grain=), so a
// view is a link and the back button restores it.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { useApi, useReading, status } from "../lib/hooks.js";
import { query } from "../lib/api.js";
import { navigate } from "../lib/router.js";
import { CommitSelect } from "../lib/select.js";
import { Chart } from "../lib/chart.js";
import { asOf, day, label, money, number, pct, thousands } from "../lib/format.js";
import { AT_RISK } from "./customers.js";
import { Movers } from "./overview-movers.js";

// The API counts health by its label; the customer list filters by the state's name.
const HEALTH_STATE = { "happy and stable": "happy", "happy but at risk": "at_risk", unhappy: "unhappy" };
const HEALTH_COLOURS = { happy: "#1a7f37", at_risk: "#d4a72c", unhappy: "#b42318" };
const NO_CHANNEL = "(none)"; // what the stats call events without a channel

export function Bars({ id, entries, href }) {
  const max = Math.max(1, ...entries.map(([, n]) => n));
  return html`<div id=${id} class="bars">
    ${entries.map(([name, n]) => html`<div class="bar">
      <span class="name" title=${label(name)}>${label(name)}</span>
      <div class="track"><div class="fill" style=${{ width: `${(100 * n) / max}%` }}></div></div>
      ${href ? html`<a class="n" href=${href(name)}>${thousands(n)}</a>` : html`<span class="n">${thousands(n)}</span>`}
    </div>`)}
  </div>`;
}

function Card({ id, title, value, href, note }) {
  return html`<div class="card"><div class="label">${title}</div>
    ${href ? html`<a id=${id} class="value" href=${href}>${value}</a>` : html`<div id=${id} class="value">${value}</div>`}
    ${note ? html`<div class="note muted">${note}</div>` : null}
  </div>`;
}

// --- the date range -------------------------------------------------------------------------

const PRESETS = [
  { text: "90 days, daily", days: 90, grain: "day" },
  { text: "12 months, weekly", days: 365, grain: "week" },
  { text: "3 years, monthly", days: 3 * 365, grain: "month" },
];
const isoDay = (date) => date.toISOString().slice(0, 10);
const daysBefore = (days) => isoDay(new Date(Date.now() - days * 86_400_000));

function viewOf(params) {
  return { since: params.get("since") || "", until: params.get("until") || "", grain: params.get("grain") || "week" };
}

function RangeForm({ view, shown }) {
  // The URL keeps only what the person chose: a date left at its default stays out of it.
  const go = (next) => navigate(`/overview${query({ ...next, grain: next.grain === "week" ? "" : next.grain })}`);
  const chosen = (value, fallback, was) => (value && (value !== fallback || was) ? value : "");
  const apply = (form, grain) => go({
    since: chosen(form.since.value, shown.since, view.since),
    until: chosen(form.until.value, shown.until, view.until),
    grain,
  });
  return html`<form id="range" class="toolbar" aria-label="Date range of the charts"
      onSubmit=${(e) => { e.preventDefault(); apply(e.currentTarget, e.currentTarget.grain.value); }}>
    <label>From <input id="range-since" name="since" type="date" key=${view.since || `default ${shown.since}`} defaultValue=${view.since || shown.since || ""} /></label>
    <label>To <input id="range-until" name="until" type="date" key=${view.until || `default ${shown.until}`} defaultValue=${view.until || shown.until || ""} /></label>
    <label>Points <${CommitSelect} name="grain" value=${view.grain} commit=${(grain) => apply(document.getElementById("range"), grain)}>
      <option value="day">daily</option><option value="week">weekly</option><option value="month">monthly</option>
    <//></label>
    <button type="submit">Show</button>
    <span class="presets">${PRESETS.map((p) => html`<a class="preset" href=${`/overview${query({ since: daysBefore(p.days), grain: p.grain === "week" ? "" : p.grain })}`}>${p.text}</a>`)}</span>
  </form>`;
}

// --- charts over time ----------------------------------------------------------------------

const axisOf = (names) => ({ type: "category", data: names, boundaryGap: false,
  axisLabel: { hideOverlap: true, alignMinLabel: "left", alignMaxLabel: "right" } });
const countAxis = { type: "value", axisLabel: { formatter: (v) => thousands(v) } };
const grid = { top: 56, left: 8, right: 16, bottom: 8, containLabel: true };
const legend = { top: 0, type: "scroll" };

const STAGE_COLOURS = ["#9ab4e8", "#5b8def", "#2456c7", "#2f9e8f", "#1a7f37", "#7a5cc7", "#c77a2b"];
const EXIT_COLOURS = ["#d9534f", "#a33", "#e39a93"];
function stageColours(trend) {
  const colours = {};
  let go = 0;
  let out = 0;
  for (const name of Object.keys(trend.stages)) {
    colours[name] = trend.exit_stages.includes(name) ? EXIT_COLOURS[out++ % EXIT_COLOURS.length] : STAGE_COLOURS[go++ % STAGE_COLOURS.length];
  }
  return colours;
}

function stackedArea(trend, series, colours = {}) {
  return {
    tooltip: { trigger: "axis", valueFormatter: (v) => thousands(v) },
    legend, grid, xAxis: axisOf(trend.points.map((p) => p.label)), yAxis: countAxis,
    series: Object.entries(series).map(([name, data]) => ({
      name: label(name), type: "line", stack: "all", areaStyle: { opacity: 0.85 }, symbol: "none", data,
      itemStyle: colours[name] ? { color: colours[name] } : undefined, lineStyle: { width: 1 },
    })),
  };
}

function healthOption(trend) {
  const option = stackedArea(trend, Object.fromEntries(Object.entries(trend.health).map(([s, d]) => [trend.health_labels[s], d])),
    Object.fromEntries(Object.entries(HEALTH_COLOURS).map(([s, c]) => [trend.health_labels[s], c])));
  option.yAxis = [countAxis, { type: "value", min: 0, max: 100, name: "mean score", splitLine: { show: false } }];
  option.series.push({ name: "mean score", type: "line", yAxisIndex: 1, symbol: "none", data: trend.mean_health,
    lineStyle: { type: "dashed", color: "#1d2330" }, itemStyle: { color: "#1d2330" }, tooltip: { valueFormatter: (v) => number(v) } });
  return option;
}

// The day a point's counts stand at: a week's or month's last day (its label is its first), or
// "now" for the period still running, so "At the end of" names the moment the links list.
const pointDay = (point) => (asOf(point.at) === "now" ? "now" : day(point.at));

// One point of a chart over time, its counts linking to the customers behind them then (the
// list's as_of filter: stage and health as they stood at the point's instant). A click in the
// chart picks the point; the select does the same from the keyboard.
function PointCounts({ id, trend, series, param, names, picked, pick }) {
  const n = Math.min(picked ?? trend.points.length - 1, trend.points.length - 1);
  const point = trend.points[n];
  if (!point) return null;
  const entries = Object.entries(series).filter(([, counts]) => counts[n]);
  return html`<div id=${id} class="point-counts">
    <label>At the end of <select id=${`${id}-select`} value=${n} onChange=${(e) => pick(Number(e.currentTarget.value))}>
      ${trend.points.map((p, i) => html`<option value=${i}>${pointDay(p)}</option>`)}
    </select></label>
    ${entries.length ? html`<ul class="inline-list">${entries.map(([name, counts]) => html`<li>
      <a href=${`/customers${query({ [param]: name, as_of: point.at })}`}>${names(name)}: ${thousands(counts[n])}</a></li>`)}</ul>`
      : html`<span class="muted">nobody yet</span>`}
  </div>`;
}

// The stage now: counts linking to the list (the list's stage filter is "stage now").
function StagesPanel({ counts, trend }) {
  const stages = Object.entries(counts.data?.stages || {});
  const [picked, pick] = useState(null);
  return html`<div class="panel">
    <h2>Customers per stage <span id="stages-at" class="muted">${counts.data && stages.length ? asOf(counts.data.at) : ""}</span></h2>
    ${status(counts, { empty: "No stage history yet: run clm lifecycle run." })}
    ${counts.data && (stages.length
      ? html`<${Bars} id="stages" entries=${stages} href=${(stage) => `/customers${query({ stage })}`} />`
      : html`<p id="stages" class="muted">No stage history yet: run <code>clm lifecycle run</code>.</p>`)}
    ${status(trend)}
    ${trend.data && html`<h3>Over time <span class="muted">(${trend.data.stage_model}, at the end of each ${trend.data.grain}${trend.data.current ? "" : "; refreshing: past days changed"})</span></h3>
      <${Chart} id="chart-stages" height=${300} option=${stackedArea(trend.data, trend.data.stages, stageColours(trend.data))} onPoint=${pick} />
      <${PointCounts} id="stages-point" trend=${trend.data} series=${trend.data.stages} param="stage" names=${label} picked=${picked} pick=${pick} />`}
  </div>`;
}

function HealthPanel({ counts, trend }) {
  const health = Object.entries(counts.data?.health || {});
  const [picked, pick] = useState(null);
  return html`<div class="panel">
    <h2>Health</h2>
    ${status(counts)}
    ${counts.data && html`<${Bars} id="health" entries=${health} href=${(state) => `/customers${query({ health_state: HEALTH_STATE[state] || state })}`} />`}
    ${trend.data && html`<h3>Over time <span class="muted">(customers per state and the mean score)</span></h3>
      <${Chart} id="chart-health" height=${300} option=${healthOption(trend.data)} onPoint=${pick} />
      <${PointCounts} id="health-point" trend=${trend.data} series=${trend.data.health} param="health_state" names=${(s) => trend.data.health_labels[s] || label(s)} picked=${picked} pick=${pick} />`}
  </div>`;
}

// Churn and revenue retention per month: the churn_retention report's own figures.
function RetentionPanel({ view }) {
  const report = useReading(`/overview/retention${query({ since: view.since, until: view.until })}`, { follow: true });
  const r = report.data?.ready ? report.data : null;
  const { waiting } = report;
  const whole = r ? r.periods.filter((p) => !p.partial) : [];
  const last = whole[whole.length - 1];
  const buyers = r && r.periods.some((p) => p.active_at_start || p.new || p.revenue);
  return html`<div class="panel">
    <h2>Churn and revenue retention <span class="muted">per month</span></h2>
    ${status(report)}
    ${waiting ? html`<p class="muted" aria-busy="true">Reading the whole log for the churn report; this first reading takes a while…</p>` : null}
    ${r && !buyers ? html`<p id="retention-last" class="muted">No buyers in this range: churn and revenue retention count customers who bought.</p>` : null}
    ${r && buyers && html`
      ${last ? html`<p id="retention-last">${last.period}: ${thousands(last.active_at_start)} active buyers at its start, ${thousands(last.new)} new;
        churn ${pct(last.churn_rate)}, net revenue retention ${pct(last.net_revenue_retention)}, gross ${pct(last.gross_revenue_retention)}.</p>` : null}
      <${Chart} id="chart-retention" height=${260} option=${{
        tooltip: { trigger: "axis", valueFormatter: (v) => pct(v) }, legend, grid: { ...grid, right: 40 },
        xAxis: { ...axisOf(r.periods.map((p) => p.period + (p.partial ? " (partial)" : ""))), boundaryGap: true },
        yAxis: { type: "value", axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
        series: [
          { name: "churn rate", type: "bar", data: r.periods.map((p) => p.churn_rate), itemStyle: { color: "#b42318" } },
          { name: "net revenue retention", type: "line", data: r.periods.map((p) => p.net_revenue_retention) },
          { name: "gross revenue retention", type: "line", data: r.periods.map((p) => p.gross_revenue_retention) },
        ],
      }} />
      <p class="muted small">Buyers only: ${r.definitions.churned}. NRR/GRR: ${r.definitions["NRR/GRR"]}.
        ${r.current ? "" : html`<span id="retention-refreshing"> Refreshing: these figures are from before the latest events.</span>`}
        ${" "}<a href=${`/reports/churn_retention${query({ since: view.since, until: view.until })}`}>The full report</a></p>`}
  </div>`;
}

// The stage funnel (the funnel report): how many entered each step, how many went on, and
// the median days it took. Its counts are of entries over time, not of customers standing in
// a stage now, so they link to the report rather than to the list.
function Funnel() {
  const report = useReading("/overview/funnel", { follow: true });
  const { waiting } = report;
  const steps = report.data?.steps || [];
  return html`<div class="panel"><h2>Stage funnel <a class="small" href="/reports/funnel">report</a></h2>
    ${status(report, { empty: "No stage history yet." })}
    ${waiting ? html`<p class="muted" aria-busy="true">Reading the whole stage history for the funnel…</p>` : null}
    ${report.data?.ready && html`<div class="table-wrap"><table id="funnel">
      <thead><tr><th>step</th><th class="num">entered</th><th class="num">went on</th><th class="num">conversion</th><th class="num">median days</th></tr></thead>
      <tbody>${steps.map((s) => html`<tr>
        <td>${label(s.from_stage)} → ${label(s.to_stage)}</td>
        <td class="num">${thousands(s.entered)}</td>
        <td class="num">${thousands(s.converted)}</td>
        <td class="num">${pct(s.conversion_rate)}</td>
        <td class="num">${number(s.median_days)}</td>
      </tr>`)}</tbody></table></div>`}
  </div>`;
}

function Channels({ stats }) {
  const entries = Object.entries(stats.events_by_channel).map(([name, n]) => [name === NO_CHANNEL ? "no channel (direct)" : name, n]);
  return html`<div class="panel"><h2>Touchpoints by channel</h2>
    ${entries.length ? html`<${Bars} id="channels" entries=${entries} />` : html`<p id="channels" class="muted">No touchpoints yet.</p>`}
  </div>`;
}

export function Overview({ params }) {
  const view = viewOf(params);
  const stats = useApi("/workspace/stats");
  const counts = useApi("/lifecycle/counts");
  const trend = useApi(`/overview/trends${query(view)}`);
  const risk = useApi("/overview/revenue-at-risk").data;
  const s = stats.data;
  return html`<section id="overview" class="page">
    <h1>Overview</h1>
    ${status(stats)}
    ${s && html`<div class="cards">
      <${Card} id="stat-customers" title="Customers" value=${thousands(s.customers)} href="/customers" />
      <${Card} id="stat-identified" title="Identified" value=${thousands(s.identified_customers)} />
      <${Card} id="stat-events" title="Touchpoints" value=${thousands(s.events)} />
      <${Card} id="stat-purchases" title="Purchases" value=${thousands(s.purchases)} />
      <${Card} id="stat-revenue" title="Revenue" value=${money(s.revenue)} />
      <${Card} id="stat-at-risk" title="At risk or unhappy" value=${risk ? thousands(risk.customers) : "…"} href=${AT_RISK} />
      <${Card} id="stat-revenue-at-risk" title="Revenue at risk (12-month CLV)" value=${risk ? money(risk.clv_12m) : "…"} href=${AT_RISK}
        note=${risk && html`<span title=${risk.definition}>${risk.share_of_clv === null ? "no CLV predicted yet" : `${pct(risk.share_of_clv)} of all customers' CLV`}${risk.without_prediction ? `; ${thousands(risk.without_prediction)} without a prediction` : ""}</span>`} />
    </div>`}
    <${Movers} />
    <${RangeForm} view=${view} shown=${trend.data || {}} />
    <div class="panels charts">
      <${StagesPanel} counts=${counts} trend=${trend} />
      <${HealthPanel} counts=${counts} trend=${trend} />
      <${RetentionPanel} view=${view} />
      <${Funnel} />
      ${s && html`<${Channels} stats=${s} />`}
    </div>
  </section>`;
}
