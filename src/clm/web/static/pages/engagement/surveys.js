// Surveys: each survey's score by the standard definition (NPS = % promoters 9-10 minus %
// detractors 0-6; CSAT = % answering 4-5; CES = mean), its trend, the spread of answers and
// the comments with their sentiment, paged in the database.
import { html } from "../../lib/html.js";
import { CommitSelect } from "../../lib/select.js";
import { useApi, status } from "../../lib/hooks.js";
import { query } from "../../lib/api.js";
import { navigate } from "../../lib/router.js";
import { label, minute, number, pct, signedNumber, thousands } from "../../lib/format.js";
import { Chart } from "../../lib/chart.js";
import { NewSurvey, SurveyFacts } from "./survey-form.js";
import { can, lacks } from "../../lib/access.js";

const GRAINS = ["month", "week", "quarter"];
const TONES = [["", "all comments"], ["negative", "negative"], ["neutral", "neutral"], ["positive", "positive"]];

function scoreText(r) {
  if (r.value === null) return "–";
  if (r.type === "nps") return signedNumber(r.value);
  if (r.type === "csat") return pct(r.value / 100);
  return number(r.value);
}
const DEFINITION = {
  nps: "NPS: % promoters (9–10) minus % detractors (0–6), from −100 to +100.",
  csat: "CSAT: % of answers 4 or 5 on a 1–5 scale.",
  ces: "CES: the mean answer on a 1–7 scale (lower is easier).",
};

function trendOption(r) {
  const periods = r.trend.map((p) => p.period);
  const nps = r.type === "nps";
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { top: 40, left: 8, right: 8, bottom: 8, containLabel: true },
    xAxis: { type: "category", data: periods, axisLabel: { hideOverlap: true } },
    yAxis: [
      { type: "value", min: nps ? -100 : r.type === "csat" ? 0 : undefined, max: nps || r.type === "csat" ? 100 : undefined },
      { type: "value", splitLine: { show: false }, minInterval: 1 },
    ],
    series: [
      { name: "responses", type: "bar", yAxisIndex: 1, data: r.trend.map((p) => p.responses), itemStyle: { color: "#c9d6f2" } },
      { name: r.metric, type: "line", data: r.trend.map((p) => p.value), symbolSize: 8, itemStyle: { color: "#2456c7" },
        label: { show: r.trend.length <= 12, position: "top", formatter: (p) => (nps ? signedNumber(p.value) : number(p.value)) } },
    ],
  };
}

function spreadOption(r) {
  const scores = Object.keys(r.distribution);
  const colour = (s) => {
    const n = Number(s);
    if (r.type === "nps") return n >= 9 ? "#1a7f37" : n >= 7 ? "#c9a227" : "#b42318";
    if (r.type === "csat") return n >= 4 ? "#1a7f37" : n === 3 ? "#c9a227" : "#b42318";
    return "#2456c7";
  };
  return {
    tooltip: { trigger: "axis" },
    grid: { top: 10, left: 8, right: 8, bottom: 8, containLabel: true },
    xAxis: { type: "category", data: scores, name: "score" },
    yAxis: { type: "value", minInterval: 1 },
    series: [{ type: "bar", name: "answers", data: scores.map((s) => ({ value: r.distribution[s], itemStyle: { color: colour(s) } })) }],
  };
}

function Results({ survey, grain }) {
  const results = useApi(`/engage/surveys/${encodeURIComponent(survey)}/results${query({ granularity: grain })}`);
  const r = results.data;
  const base = `/engagement/surveys/${encodeURIComponent(survey)}`;
  return html`${status(results)}
    ${r && html`<div class="cards" id="survey-score">
        <div class="card"><span class="label">${r.metric}</span><span class="value" id="survey-value">${scoreText(r)}</span></div>
        <div class="card"><span class="label">responses</span><span class="value">${thousands(r.responses)}</span></div>
        <div class="card"><span class="label">response rate</span><span class="value">${pct(r.response_rate)}</span><span class="muted">of ${thousands(r.asked)} asked</span></div>
        ${r.type === "nps" || r.type === "csat" ? html`
          <div class="card"><span class="label">${r.type === "nps" ? "promoters" : "satisfied"}</span><span class="value ok">${thousands(r.promoters)}</span><span class="muted">${pct(r.responses ? r.promoters / r.responses : null)}</span></div>
          <div class="card"><span class="label">${r.type === "nps" ? "passives" : "neutral"}</span><span class="value">${thousands(r.passives)}</span><span class="muted">${pct(r.responses ? r.passives / r.responses : null)}</span></div>
          <div class="card"><span class="label">${r.type === "nps" ? "detractors" : "dissatisfied"}</span><span class="value error">${thousands(r.detractors)}</span><span class="muted">${pct(r.responses ? r.detractors / r.responses : null)}</span></div>` : null}
      </div>
      <p class="muted">${DEFINITION[r.type] || "Mean answer."} Each response counts once (a comment added later does not count again).</p>
      ${r.responses === 0 ? html`<p class="panel muted" id="no-answers">No answers to this survey yet.</p>` : html`<div class="panels">
        <div class="panel">
          <div class="toolbar"><h2 style="flex:1;margin:0">${r.metric} over time</h2>
            <label>Per <${CommitSelect} id="survey-grain" value=${grain} commit=${(g) => navigate(`${base}${query({ granularity: g === "month" ? "" : g })}`)}>
              ${GRAINS.map((g) => html`<option value=${g}>${g}</option>`)}<//></label></div>
          <${Chart} id="chart-survey-trend" option=${trendOption(r)} height=${280} />
        </div>
        <div class="panel"><h2>Answers by score</h2><${Chart} id="chart-survey-spread" option=${spreadOption(r)} height=${280} /></div>
      </div>`}`}`;
}

function Comments({ survey, params }) {
  const tone = params.get("tone") || "";
  const page = Number(params.get("page") || 1);
  const base = `/engagement/surveys/${encodeURIComponent(survey)}`;
  const grain = params.get("granularity") || "";
  const list = useApi(`/engage/surveys/${encodeURIComponent(survey)}/comments${query({ tone, page, per_page: 20 })}`);
  const show = (change) => navigate(`${base}${query({ granularity: grain, tone, page: "", ...change })}`);
  const data = list.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.per_page)) : 1;
  return html`<div class="panel" id="survey-comments">
    <div class="toolbar"><h2 style="flex:1;margin:0">Comments ${data ? html`<span class="muted">${thousands(data.total)}</span>` : null}</h2>
      <label>Tone <${CommitSelect} id="comment-tone" value=${tone} commit=${(chosen) => show({ tone: chosen })}>
        ${TONES.map(([value, text]) => html`<option value=${value}>${text}</option>`)}<//></label></div>
    ${status(list)}
    ${data && (data.items.length === 0 ? html`<p class="muted">No comments${tone ? ` with a ${tone} tone` : ""}.</p>` : html`<ul class="plain comments">
      ${data.items.map((c) => html`<li>
        <div><span class=${`pill ${c.tone === "negative" ? "unhappy" : c.tone === "positive" ? "happy" : "neutral"}`}>${c.tone} ${c.sentiment === null ? "" : signedNumber(c.sentiment)}</span>
          <b>score ${c.score ?? "–"}</b> · ${c.customer_id ? html`<a href=${`/customers/${c.customer_id}`}>${c.customer}</a>` : c.customer} · <span class="muted">${minute(c.at)}</span></div>
        <p class="comment">${c.comment}</p></li>`)}
    </ul>
    <nav class="pager" aria-label="Comment pages">
      <button type="button" class="secondary" disabled=${page <= 1} onClick=${() => show({ page: page - 1 > 1 ? page - 1 : "" })}>Previous</button>
      <span>Page ${thousands(page)} of ${thousands(pages)}</span>
      <button type="button" class="secondary" disabled=${page >= pages} onClick=${() => show({ page: page + 1 })}>Next</button>
    </nav>`)}
  </div>`;
}

export function Surveys({ survey, params }) {
  const list = useApi("/engage/surveys");
  const surveys = list.data || [];
  const creating = params.get("create") === "1" && can("survey.create");
  const current = creating ? null : survey || (surveys[0] && surveys[0].key);
  const shown = surveys.find((s) => s.key === current);
  const grain = params.get("granularity") || "month";
  return html`<div class="panel">
      <div class="toolbar"><h2 style="flex:1;margin:0">Surveys</h2>
        ${creating || !can("survey.create") ? null : html`<button type="button" id="new-survey-button" onClick=${() => navigate("/engagement/surveys?create=1")}>New survey</button>`}</div>
      ${status(list)}
      ${list.data && (surveys.length === 0
        ? html`<p class="muted">No surveys yet: create one here, or <code>clm survey apply file.yaml</code>.</p>`
        : html`<nav aria-label="Surveys" class="tabs sub"><ul>${surveys.map((s) => html`<li>
            <a href=${`/engagement/surveys/${encodeURIComponent(s.key)}`} aria-current=${s.key === current ? "page" : undefined}>${s.key} <span class="muted">· ${label(s.type).toUpperCase()}</span></a></li>`)}</ul></nav>`)}
    </div>
    ${creating ? html`<${NewSurvey} onCreated=${list.reload} />` : null}
    ${current ? html`<div key=${current}>${shown ? html`<${SurveyFacts} survey=${shown} created=${params.get("created") === "1"} />` : null}
      <${Results} survey=${current} grain=${grain} /><${Comments} survey=${current} params=${params} /></div>` : null}`;
}
