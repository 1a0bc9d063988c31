// Settings: the health scorecard's weights and thresholds, what an edit would change now
// (checked as you type), and the backtest of the edit beside the active scorecard and the
// baselines (run on request: it reads the whole log).
import { useEffect, useMemo, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { finished, progressText } from "../../lib/jobs.js";
import { difference, day, number, pct, thousands } from "../../lib/format.js";

// An AUC to three places: two hide the differences people tune weights for.
const auc = (value) => (value === null || value === undefined ? "–" : Number(value).toFixed(3));
import { problems, useChecked } from "../../lib/debounce.js";
import { Chart } from "../../lib/chart.js";
import { can, lacks } from "../../lib/access.js";

const SCORE = "health score";
const ACTIVE = "active scorecard";

// The edit as the API takes it: only what differs from the active scorecard.
function editOf(card, weights, thresholds) {
  const edit = { weights: {} };
  for (const f of card.factors) {
    const typed = weights[f.key];
    if (typed !== undefined && typed !== String(f.weight)) edit.weights[f.key] = typed === "" ? NaN : Number(typed);
  }
  for (const name of ["unhappy_below", "at_risk_below"]) {
    const typed = thresholds[name];
    if (typed !== undefined && typed !== String(card[name])) edit[name] = typed === "" ? NaN : Number(typed);
  }
  return edit;
}

const changes = (edit) => Object.keys(edit.weights).length > 0 || "unhappy_below" in edit || "at_risk_below" in edit;

// Field problems the browser can see before asking: a number 0..1000, a share 0..1.
function localProblems(edit) {
  const found = [];
  for (const [key, w] of Object.entries(edit.weights)) {
    if (!Number.isFinite(w) || w < 0 || w > 1000) found.push({ field: `weights.${key}`, text: `${key}: a weight from 0 to 1,000` });
  }
  for (const name of ["unhappy_below", "at_risk_below"]) {
    if (name in edit && (!Number.isFinite(edit[name]) || edit[name] < 0 || edit[name] > 1)) {
      found.push({ field: name, text: `${name.replaceAll("_", " ")}: a share from 0 to 1` });
    }
  }
  return found;
}

function StatesTable({ preview }) {
  return html`<div class="table-wrap"><table>
    <thead><tr><th>state</th><th class="num">now</th><th class="num">with this edit</th><th class="num">change</th></tr></thead>
    <tbody>${Object.keys(preview.before).map((state) => {
      const delta = preview.after[state] - preview.before[state];
      return html`<tr><td>${state}</td><td class="num">${thousands(preview.before[state])}</td>
        <td class="num">${thousands(preview.after[state])}</td><td class="num">${difference(delta)}</td></tr>`;
    })}</tbody></table></div>`;
}

function Backtest({ report }) {
  const option = useMemo(() => {
    const cut = report.cutoffs[report.cutoffs.length - 1];
    if (!cut) return null;
    const shown = cut.metrics.filter((m) => m.lift_by_decile.length);
    return {
      tooltip: { trigger: "axis" },
      legend: { top: 0, type: "scroll" },
      grid: { left: 36, right: 10, top: 36, bottom: 40 },
      xAxis: { type: "category", name: "decile of risk (1 = riskiest tenth)", nameLocation: "middle", nameGap: 28,
        data: Array.from({ length: 10 }, (_, i) => String(i + 1)) },
      yAxis: { type: "value" },
      series: shown.map((m) => ({ name: m.name, type: "bar", data: m.lift_by_decile })),
    };
  }, [report]);
  return html`<div id="backtest-result">
    <p class="muted">${report.scorecard}; label: ${report.label}.</p>
    ${report.warnings.length
      ? html`<ul id="backtest-warnings" class="problems" role="alert">${report.warnings.map((w) => html`<li><b>${w}</b></li>`)}</ul>`
      : report.cutoffs.length ? html`<p class="ok" id="backtest-verdict">The score beat every baseline at every cutoff.</p>` : null}
    ${report.cutoffs.map((cut) => {
      const score = cut.metrics.find((m) => m.name === SCORE);
      const active = cut.metrics.find((m) => m.name === ACTIVE);
      return html`<h3 class="cutoff">Cutoff ${day(cut.cutoff)}: ${thousands(cut.customers)} customers, ${thousands(cut.lapsed)} lapsed, ${thousands(cut.flagged)} flagged at risk</h3>
      ${score && active && score.auc !== null && active.auc !== null && html`<p class=${score.auc >= active.auc ? "ok" : "error"}>
        ${score.auc >= active.auc ? "This edit ranks at least as well as" : "This edit ranks worse than"} the active scorecard
        (AUC ${auc(score.auc)} against ${auc(active.auc)}).</p>`}
      <div class="table-wrap"><table class="backtest">
        <thead><tr><th>ranking by</th><th class="num">AUC</th><th class="num">healthiest-tenth lift</th><th class="num">precision at risk</th><th class="num">recall at risk</th></tr></thead>
        <tbody>${cut.metrics.map((m) => html`<tr class=${cut.lost_to.includes(m.name) ? "beats" : ""}>
          <td>${m.name === SCORE && active ? "health score (this edit)" : m.name}${cut.lost_to.includes(m.name) ? html` <span class="pill unhappy">beats the score</span>` : null}</td>
          <td class="num">${auc(m.auc)}</td><td class="num">${number(m.top_decile_lift)}</td>
          <td class="num">${pct(m.precision_at_risk)}</td><td class="num">${pct(m.recall_at_risk)}</td></tr>`)}</tbody>
      </table></div>`;
    })}
    ${option && html`<p class="muted">Lapse lift by decile at the latest cutoff: the lapse rate of each tenth of
      customers, riskiest first, over the average (1 = no better than chance).</p>
      <${Chart} id="chart-backtest-lift" option=${option} height=${280} />`}
  </div>`;
}

export function Health() {
  const scorecard = useApi("/health/scorecard");
  const card = scorecard.data;
  const [weights, setWeights] = useState({});
  const [thresholds, setThresholds] = useState({});
  const [saved, setSaved] = useState("");
  const [horizon, setHorizon] = useState("90");
  const [cutoffs, setCutoffs] = useState("1");
  const [run, setRun] = useState({ state: "idle" });
  const [warming, setWarming] = useState(null);

  useEffect(() => {
    setWeights({});
    setThresholds({});
  }, [card]);

  const edit = card ? editOf(card, weights, thresholds) : { weights: {} };
  const local = localProblems(edit);
  const editing = changes(edit);
  const may = can("scorecard.save");
  const body = may && editing && !local.length ? JSON.stringify(edit) : null;
  // A first preview may wait for every customer's features (a job shared by every edit); once
  // it is done the same edit is asked again and answered at once.
  const check = useChecked(body, async (text) => {
    const ask = () => api("/health/scorecard/preview", { method: "POST", body: JSON.parse(text) });
    let answer = await ask();
    for (let round = 0; answer.valid && answer.job && round < 3; round += 1) {
      try {
        await finished("/health/jobs", answer.job, setWarming);
      } finally {
        setWarming(null);
      }
      answer = await ask();
    }
    return answer;
  }, 500);
  const answer = body && check.state === "ok" ? check.value : null;
  const remote = !body ? [] : check.state === "error" ? problems(check.error)
    : answer && !answer.valid ? problems({ errors: answer.errors }) : [];
  const found = [...local.map((p) => p.text), ...remote];
  const bad = new Set(local.map((p) => p.field));
  const preview = answer && answer.valid ? answer.preview : null;
  const total = card ? card.factors.reduce((sum, f) => {
    const w = Number(weights[f.key] ?? f.weight);
    return sum + (Number.isFinite(w) && w > 0 ? w : 0);
  }, 0) : 0;

  async function save() {
    setSaved("");
    try {
      const answer = await api("/health/scorecard", { method: "PUT", body: edit });
      setSaved(`Saved ${answer.definition.name} v${answer.definition.version}. Stored scores follow at the next health run.`);
      scorecard.reload();
    } catch (error) {
      setSaved(problems(error).join("; "));
    }
  }

  async function backtest(event) {
    event.preventDefault();
    setRun({ state: "running", job: null });
    try {
      const request = { ...(editing && !local.length ? edit : {}), horizon_days: Number(horizon), cutoffs: Number(cutoffs) };
      const job = await api("/health/backtest", { method: "POST", body: request });
      const report = await finished("/health/jobs", job, (seen) => setRun({ state: "running", job: seen }));
      setRun({ state: "done", report, edited: editing });
    } catch (error) {
      setRun({ state: "error", text: problems(error).join("; ") });
    }
  }

  const field = (name, text) => html`<label>${text}
    <input name=${name} inputmode="decimal" size="6" aria-invalid=${bad.has(name) ? "true" : undefined}
      value=${thresholds[name] ?? String(card[name])} onInput=${(e) => setThresholds({ ...thresholds, [name]: e.currentTarget.value })} /></label>`;

  return html`${status(scorecard)}${card && html`<div class="panels">
    <div class="panel">
      <h2>Scorecard <span class="muted">${card.definition.name} v${card.definition.version}</span></h2>
      <p class="muted">${card.description}</p>
      <form id="scorecard-form" onSubmit=${(e) => { e.preventDefault(); save(); }}>
        <div class="table-wrap"><table id="scorecard-factors">
          <thead><tr><th>factor</th><th class="num">weight</th><th class="num">points</th></tr></thead>
          <tbody>${card.factors.map((f) => {
            const typed = weights[f.key] ?? String(f.weight);
            const w = Number(typed);
            return html`<tr data-factor=${f.key}><td class="wrap">${f.label} <span class="muted">(${f.axis})</span></td>
              <td class="num"><input name=${`weight-${f.key}`} aria-label=${`weight of ${f.label}`} inputmode="decimal" size="5"
                aria-invalid=${bad.has(`weights.${f.key}`) ? "true" : undefined}
                value=${typed} onInput=${(e) => setWeights({ ...weights, [f.key]: e.currentTarget.value })} /></td>
              <td class="num">${Number.isFinite(w) && w > 0 && total > 0 ? number((100 * w) / total) : "off"}</td></tr>`;
          })}</tbody></table></div>
        <div class="toolbar" style="margin-top:.75rem">
          ${field("unhappy_below", "Unhappy below (share of sentiment points)")}
          ${field("at_risk_below", "At risk below (share of risk points)")}
        </div>
        <div class="toolbar">
          ${may ? html`<button id="save-scorecard" type="submit" disabled=${!preview}>Save as new version</button>
          <button class="secondary" type="button" disabled=${!editing} onClick=${() => { setWeights({}); setThresholds({}); }}>Reset</button>` : html`<span class="muted denied">${lacks("scorecard.save")}</span>`}
          <span id="scorecard-state" class="muted">${!editing ? "No changes." : found.length ? `${found.length} problem${found.length > 1 ? "s" : ""}.`
            : warming ? `Reading every customer's features (once): ${progressText(warming)}`
            : check.state === "checking" ? "Checking…" : preview ? "Valid." : ""}</span>
        </div>
        <p id="scorecard-saved" role="status">${saved}</p>
      </form>
      <p class="muted">Points: each factor's share of the 100 points. A weight of 0 leaves the factor out; weights are relative.
        Versions: ${card.versions.map((v) => `v${v.version}${v.active ? " (active)" : ""}`).join(", ")}.</p>
    </div>
    <div class="panel">
      <h2>What would change now</h2>
      ${found.length ? html`<ul id="scorecard-errors" class="problems" role="alert">${found.map((p) => html`<li>${p}</li>`)}</ul>` : null}
      ${!editing ? html`<p class="muted">Change a weight or a threshold to see how many customers would change state.</p>` : null}
      ${preview && html`<div id="scorecard-preview">
        <p><b>${thousands(preview.changed)}</b> of ${thousands(preview.customers)} customers would change state
          (mean score ${number(preview.mean_score_before)} → ${number(preview.mean_score_after)}).</p>
        <${StatesTable} preview=${preview} />
        ${Object.keys(preview.moves).length ? html`<ul class="plain">${Object.entries(preview.moves).map(([move, n]) =>
          html`<li>${move.replace(" -> ", " → ")}: ${thousands(n)}</li>`)}</ul>` : null}
      </div>`}
      <h2 style="margin-top:1rem">Backtest</h2>
      <p class="muted">Scores computed at a past cutoff from the events before it, against who lapsed in the horizon after,
        beside recency, P(alive), frequency and random${editing ? ", and the active scorecard" : ""}.</p>
      <form id="backtest-form" class="toolbar" onSubmit=${backtest}>
        <label>Horizon<select name="horizon" value=${horizon} onChange=${(e) => setHorizon(e.currentTarget.value)}>
          ${["30", "60", "90", "180", "365"].map((d) => html`<option value=${d}>${d} days</option>`)}</select></label>
        <label>Cutoffs<select name="cutoffs" value=${cutoffs} onChange=${(e) => setCutoffs(e.currentTarget.value)}>
          ${["1", "2", "4"].map((n) => html`<option value=${n}>latest ${n}</option>`)}</select></label>
        ${can("scorecard.backtest") ? html`<button id="run-backtest" type="submit" disabled=${run.state === "running" || local.length > 0}>
          ${editing ? "Backtest this edit" : "Backtest the active scorecard"}</button>` : html`<span class="muted denied">${lacks("scorecard.backtest")}</span>`}
      </form>
      ${run.state === "running" ? html`<div id="backtest-running" aria-busy="true" role="status">
        <p class="muted">Backtesting ${cutoffs === "1" ? "the latest cutoff" : `the latest ${cutoffs} cutoffs`} in the background…
          each reads the whole log, so this can take a minute on a large workspace.</p>
        <p><progress id="backtest-progress" max="1" value=${run.job ? run.job.progress : 0} aria-label="backtest progress"></progress>
          <span class="muted"> ${run.job ? progressText(run.job) : "starting"}</span></p></div>` : null}
      ${run.state === "error" ? html`<p class="error" role="alert">${run.text}</p>` : null}
      ${run.state === "done" ? html`<${Backtest} report=${run.report} />` : null}
    </div>
  </div>`}`;
}
