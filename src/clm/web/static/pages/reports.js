// Reports: each of `clm report`'s seven reports at a URL of its own (/reports/<name>?since=..),
// its chart, and its tables with CSV -- the same parameters drive all three.
import { html } from "../lib/html.js";
import { useReading, status } from "../lib/hooks.js";
import { query } from "../lib/api.js";
import { navigate } from "../lib/router.js";
import { day, label, minute, thousands } from "../lib/format.js";
import { Chart } from "../lib/chart.js";
import { DataTable } from "../lib/table.js";

export const REPORTS = [
  { name: "funnel", title: "Funnel", params: ["since", "until", "stage", "segment"] },
  { name: "churn_retention", title: "Churn & retention", params: ["since", "until", "granularity", "segment"] },
  { name: "cohorts", title: "Cohorts", params: ["since", "until", "cohort_by", "segment"] },
  { name: "rfm", title: "RFM", params: ["since", "until"] },
  { name: "attribution", title: "Attribution", params: ["since", "until", "dimension", "from_stage", "to_stage", "segment"] },
  { name: "acquisition", title: "Acquisition", params: ["since", "until", "dimension", "segment"] },
  { name: "feedback", title: "Feedback", params: ["since", "until", "granularity", "segment"] },
];

// Every report also takes a saved segment (its current members), by name.
for (const spec of REPORTS) spec.params.push("saved_segment");

const CHOICES = {
  granularity: ["month", "week", "quarter", "year"],
  cohort_by: ["acquisition", "first_purchase"],
  dimension: { attribution: ["channel", "campaign", "type"], acquisition: ["channel", "campaign"] },
};
const MODELS = ["first_touch", "last_touch", "linear", "time_decay", "position_based", "markov", "shapley"];

const axisOf = (names) => ({ type: "category", data: names, axisLabel: { hideOverlap: true } });
const tooltip = { trigger: "axis" };
const percentAxis = { type: "value", axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } };

// The funnel of customers entering each stage in the period: every step's "entered", then
// the last step's "converted" (the stage counts now are in the first table).
function funnelSteps(r) {
  if (r.steps.length === 0) return r.counts.map((c) => ({ name: c.stage, value: c.customers }));
  const last = r.steps[r.steps.length - 1];
  return [...r.steps.map((s) => ({ name: s.from_stage, value: s.entered })), { name: last.to_stage, value: last.converted }];
}

const PALETTE = ["#8c96a8", "#9ab4e8", "#5b8def", "#2456c7", "#2f9e8f", "#1a7f37", "#d9534f", "#7a5cc7", "#c77a2b"];

// The transitions as a Sankey from the stage left (left column) to the stage entered (right).
// Not one node per stage: customers come back (churned → retention → churned), and a Sankey
// must not loop, so each stage is drawn once as a source and once as a target.
function sankey(r) {
  const stageOf = (node) => node.slice(node.indexOf(":") + 1);
  const used = (side, name) => r.flow.some((l) => (side === "from" ? l.source : l.target) === name);
  // A stage has one colour on both sides.
  const colour = (name) => PALETTE[r.flow_nodes.indexOf(name) % PALETTE.length];
  const nodes = ["from", "to"].flatMap((side, depth) => r.flow_nodes.filter((name) => used(side, name))
    .map((name) => ({ name: `${side}:${name}`, depth, itemStyle: { color: colour(name) } })));
  return {
    tooltip: { trigger: "item", formatter: (p) => (p.dataType === "edge"
      ? `${label(stageOf(p.data.source))} → ${label(stageOf(p.data.target))}: ${thousands(p.data.value)}`
      : `${label(stageOf(p.name))}: ${thousands(p.value)}`) },
    series: [{ type: "sankey", emphasis: { focus: "adjacency" }, nodeGap: 10, left: 8, right: 90,
      label: { formatter: (p) => label(stageOf(p.name)) }, lineStyle: { color: "source", opacity: 0.35 },
      data: nodes,
      links: r.flow.map((l) => ({ source: `from:${l.source}`, target: `to:${l.target}`, value: l.value })) }],
  };
}

// The four transitions with the most moves that some channel other than none led to: a
// transition every model credits wholly to "(direct)" has nothing to compare (its table says it).
function chartedPairs(pairs) {
  const told = pairs.filter((p) => p.channels.some((c) => c.value !== "(direct)" && c.first_touch > 0));
  return [...(told.length ? told : pairs)].sort((a, b) => b.transitions - a.transitions).slice(0, 4);
}

// The chart of each report, from its JSON (see clm.analytics.schemas).
const CHARTS = {
  funnel: (r) => [
    { id: "chart-funnel", title: "Customers entering each stage", option: {
      tooltip: { trigger: "item" },
      series: [{ type: "funnel", sort: "none", left: "4%", width: "52%", minSize: "8%",
        label: { formatter: (p) => `${label(p.name)}: ${p.value.toLocaleString()}` },
        data: funnelSteps(r) }],
    } },
    r.flow.length ? { id: "chart-sankey", title: "All transitions in the period (from → to)", option: sankey(r) } : null,
  ],
  churn_retention: (r) => [{ id: "chart-retention", title: "Churn and revenue retention", option: {
    tooltip, legend: { top: 0 }, grid: { top: 50, containLabel: true }, xAxis: axisOf(r.periods.map((p) => p.period)), yAxis: percentAxis,
    series: [
      { name: "churn rate", type: "line", data: r.periods.map((p) => p.churn_rate) },
      { name: "net revenue retention", type: "line", data: r.periods.map((p) => p.net_revenue_retention) },
      { name: "gross revenue retention", type: "line", data: r.periods.map((p) => p.gross_revenue_retention) },
    ],
  } }],
  cohorts: (r) => {
    const ages = Math.max(0, ...r.cohorts.map((c) => c.active_share.length));
    const cells = r.cohorts.flatMap((c, y) => c.active_share.map((v, x) => [x, y, Math.round(v * 1000) / 10]));
    return [{ id: "chart-cohorts", height: Math.max(240, 28 * r.cohorts.length + 90), option: {
      tooltip: { formatter: (p) => `${r.cohorts[p.value[1]].cohort}, age ${p.value[0]}: ${p.value[2]}% active` },
      grid: { left: 90, right: 50, top: 10, bottom: 90 },
      xAxis: { type: "category", data: Array.from({ length: ages }, (_, i) => String(i)), name: "age" },
      yAxis: { type: "category", data: r.cohorts.map((c) => c.cohort), inverse: true },
      visualMap: { min: 0, max: 100, orient: "horizontal", left: "center", bottom: 0, itemHeight: 160, text: ["100% active", "0%"] },
      series: [{ type: "heatmap", data: cells, label: { show: ages <= 14, formatter: (p) => `${Math.round(p.value[2])}` } }],
    } }];
  },
  rfm: (r) => {
    const max = Math.max(1, ...r.grid.map((c) => c.customers));
    return [{ id: "chart-rfm", option: {
      tooltip: { formatter: (p) => `R ${p.value[0]}, FM ${p.value[1]}: ${p.value[2].toLocaleString()} customers` },
      grid: { left: 60, right: 80, top: 30, bottom: 90 },
      xAxis: { type: "category", name: "recency", data: ["1", "2", "3", "4", "5"] },
      yAxis: { type: "category", name: "frequency × monetary", data: ["1", "2", "3", "4", "5"] },
      visualMap: { min: 0, max, orient: "horizontal", left: "center", bottom: 0, itemHeight: 160, text: [`${max.toLocaleString()} customers`, "0"] },
      series: [{ type: "heatmap", label: { show: true },
        data: r.grid.map((c) => [String(c.recency), String(c.frequency_monetary), c.customers]) }],
    } }];
  },
  attribution: (r) => chartedPairs(r.pairs).map((pair, i) => ({ id: `chart-attribution-${i}`, title: `${label(pair.from_stage)} → ${label(pair.to_stage)}: ${thousands(pair.transitions)} transitions`, option: {
    tooltip, legend: { top: 0 }, grid: { top: 80, bottom: 30, containLabel: true },
    xAxis: { ...axisOf(pair.channels.map((c) => c.value)), axisLabel: { interval: 0, rotate: pair.channels.length > 4 ? 30 : 0, formatter: label } },
    yAxis: { type: "value", name: "transitions credited" },
    series: MODELS.filter((m) => m !== "shapley" || pair.shapley_available).map((m) => ({
      name: label(m), type: "bar", data: pair.channels.map((c) => c[m]) })),
  } })),
  acquisition: (r) => [{ id: "chart-acquisition", title: r.channels.some((c) => c.spend !== null)
    ? "New customers and CAC" : "New customers (no spend imported: clm report import-spend)", option: {
    tooltip, legend: { top: 0 }, grid: { top: 50, containLabel: true }, xAxis: axisOf(r.channels.map((c) => c.value)),
    yAxis: [{ type: "value", name: "new customers" }, { type: "value", name: "CAC" }],
    series: [
      { name: "new customers", type: "bar", data: r.channels.map((c) => c.new_customers) },
      { name: "CAC", type: "line", yAxisIndex: 1, data: r.channels.map((c) => c.cac) },
    ],
  } }],
  feedback: (r) => {
    const periods = [...new Set(r.over_time.map((f) => f.key))];
    const surveys = [...new Set(r.over_time.map((f) => f.survey))];
    if (surveys.length === 0) return [];
    return [{ id: "chart-feedback", title: "NPS, CSAT and CES over time", option: {
      tooltip, legend: { top: 0 }, grid: { top: 50, containLabel: true }, xAxis: axisOf(periods), yAxis: { type: "value", name: "NPS / CSAT / CES" },
      series: surveys.map((s) => ({ name: s, type: "line", connectNulls: true,
        data: periods.map((p) => r.over_time.find((f) => f.survey === s && f.key === p)?.value ?? null) })),
    } }];
  },
};

function Form({ spec, params }) {
  function apply(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const values = {};
    for (const name of spec.params) values[name] = form.elements[name].value.trim();
    navigate(`/reports/${spec.name}${query(values)}`);
  }
  const choices = (name) => (name === "dimension" ? CHOICES.dimension[spec.name] : CHOICES[name]);
  return html`<form id="report-params" class="toolbar" onSubmit=${apply}>
    ${spec.params.map((name) => {
      const value = params.get(name) || "";
      if (name === "since" || name === "until") {
        return html`<label>${name}<input type="date" name=${name} value=${value.slice(0, 10)} /></label>`;
      }
      const options = choices(name);
      if (options) {
        return html`<label>${label(name)}<select name=${name} value=${value}>
          <option value="">default</option>${options.map((o) => html`<option value=${o}>${label(o)}</option>`)}
        </select></label>`;
      }
      return html`<label>${label(name)}<input name=${name} value=${value} placeholder="all" size="12" /></label>`;
    })}
    <button type="submit">Run</button>
  </form>`;
}

function Report({ spec, params }) {
  const wanted = {};
  for (const name of spec.params) if (params.get(name)) wanted[name] = params.get(name);
  const report = useReading(`/reports/${spec.name}${query(wanted)}`, { follow: true });
  const r = report.data?.ready ? report.data : null;
  const charts = r ? CHARTS[spec.name](r).filter(Boolean) : [];
  return html`
    <${Form} spec=${spec} params=${params} />
    ${status(report)}
    ${report.waiting ? html`<p id="report-computing" class="muted" aria-busy="true">Computing… the first reading of this report with these parameters reads the whole log; it shows here when done.</p>` : null}
    ${r && html`<p id="report-period" class="muted">${day(r.since)} to ${day(r.until)}${r.current ? null
      : html`<span id="report-refreshing">; as of ${minute(r.computed_at)} UTC, refreshing (the data changed since)</span>`}</p>
      ${charts.length === 0 ? html`<p id="no-chart" class="panel muted">Nothing to chart in this period${spec.name === "feedback" ? ": no survey answers" : ""}.</p>` : null}
      <div class="panels">${charts.map((c) => html`<div class="panel">
        ${c.title ? html`<h2>${c.title}</h2>` : null}
        <${Chart} id=${c.id} option=${c.option} height=${c.height || 320} /></div>`)}</div>
      ${r.tables.map((t) => html`<${DataTable} table=${t} prefix=${spec.name} />`)}
      ${Object.keys(r.definitions || {}).length ? html`<details class="panel"><summary>What each figure counts</summary>
        <dl class="facts">${Object.entries(r.definitions).map(([k, v]) => html`<dt>${label(k)}</dt><dd>${v}</dd>`)}</dl></details>` : null}`}`;
}

export function Reports({ name, params }) {
  const spec = REPORTS.find((r) => r.name === (name || "funnel"));
  return html`<section id="reports" class="page">
    <h1>Reports</h1>
    <div role="navigation" aria-label="Reports views" class="tabs"><ul>
      ${REPORTS.map((r) => html`<li><a href=${`/reports/${r.name}`} aria-current=${spec && r.name === spec.name ? "page" : undefined}>${r.title}</a></li>`)}
    </ul></div>
    ${spec ? html`<${Report} key=${spec.name} spec=${spec} params=${params} />`
      : html`<p class="error">No report ${name}.</p>`}
  </section>`;
}
