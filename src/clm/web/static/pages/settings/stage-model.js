// Settings: the stage model in a YAML editor, validated and previewed as you type. A role that
// may not edit it (the preview needs the same permission) sees the model and today's counts.
import { useEffect, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { finished, progressText } from "../../lib/jobs.js";
import { difference, label, minute, thousands } from "../../lib/format.js";
import { problems, useChecked } from "../../lib/debounce.js";
import { can, lacks } from "../../lib/access.js";

export function StageModel() {
  const model = useApi("/lifecycle/model");
  const counts = useApi("/lifecycle/counts");
  const [text, setText] = useState(null);
  const [saved, setSaved] = useState("");
  useEffect(() => {
    if (model.data && text === null) setText(model.data.yaml);
  }, [model.data]);
  const [running, setRunning] = useState(null);
  // A valid model's preview reads the whole history: a background job, polled with its progress.
  const may = can("stage-model.save");
  const check = useChecked(may ? text : null, async (yaml) => {
    const answer = await api("/lifecycle/model/preview", { method: "POST", body: { yaml } });
    if (!answer.valid || !answer.job) return answer;
    try {
      return { ...answer, preview: await finished("/lifecycle/jobs", answer.job, setRunning), job: null };
    } finally {
      setRunning(null);
    }
  }, 500);
  // The check answers 200 with valid: false and the problems (no 422 in the console per key).
  const answer = check.state === "ok" ? check.value : null;
  const found = check.state === "error" ? problems(check.error)
    : answer && !answer.valid ? problems({ errors: answer.errors }) : [];
  const preview = answer && answer.valid ? answer.preview : null;
  const valid = Boolean(preview);
  const now = counts.data?.stages || {};

  async function save() {
    setSaved("");
    try {
      const answer = await api("/lifecycle/model", { method: "PUT", body: { yaml: text } });
      setSaved(`Saved ${answer.definition.name} v${answer.definition.version}. History is recomputed by the next lifecycle run.`);
    } catch (error) {
      setSaved(problems(error).join("; "));
    }
  }

  return html`<div class="panels">
    <div class="panel editor">
      <h2>Stage model ${model.data ? html`<span class="muted">${model.data.definition.name} v${model.data.definition.version}</span>` : null}</h2>
      ${status(model)}
      ${text !== null && html`<textarea id="stage-yaml" aria-label="Stage model YAML" spellcheck="false" wrap="off"
        value=${text} readOnly=${!may} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      <div class="toolbar">
        ${may ? html`<button id="save-model" type="button" onClick=${save} disabled=${!valid}>Save as new version</button>` : html`<span class="muted denied">${lacks("stage-model.save")}</span>`}
        <span id="check-state" class="muted">${check.state === "checking" ? (running ? `Previewing on the whole log: ${progressText(running)}` : "Checking…") : valid ? "Valid." : found.length ? `${found.length} problem${found.length > 1 ? "s" : ""}.` : ""}</span>
      </div>
      <p id="save-status" role="status">${saved}</p>`}
    </div>
    ${may ? null : html`<div class="panel" id="model-now">
      <h2>Customers per stage now</h2>
      <p class="muted" id="preview-denied">What a changed model would move is previewed for those who may edit it.</p>
      ${status(counts)}
      ${counts.data && html`<div class="table-wrap"><table>
        <thead><tr><th>stage</th><th class="num">customers</th></tr></thead>
        <tbody>${Object.entries(now).map(([stage, count]) => html`<tr><td>${label(stage)}</td><td class="num">${thousands(count)}</td></tr>`)}</tbody>
      </table></div>`}
    </div>`}
    ${may && html`<div class="panel" id="model-change">
      <h2>What would change</h2>
      ${found.length ? html`<ul id="model-errors" class="problems" role="alert">${found.map((p) => html`<li>${p}</li>`)}</ul>` : null}
      ${preview && html`<div id="model-preview">
        <p class="muted">${thousands(preview.customers)} customers, ${thousands(preview.transitions)} transitions under <b>${preview.model}</b>.</p>
        <div class="table-wrap"><table>
          <thead><tr><th>stage</th><th class="num">now</th><th class="num">with this model</th><th class="num">change</th></tr></thead>
          <tbody>${[...new Set([...(preview.stages || []), ...Object.keys(preview.counts), ...Object.keys(now)])].map((stage) => {
            const before = now[stage] || 0;
            const after = preview.counts[stage] || 0;
            const delta = after - before;
            return html`<tr><td>${label(stage)}</td><td class="num">${thousands(before)}</td><td class="num">${thousands(after)}</td>
              <td class="num">${difference(delta)}</td></tr>`;
          })}</tbody>
        </table></div>
        ${preview.sample.length ? html`<h2 style="margin-top:1rem">Sample transitions</h2>
          <ul class="plain">${preview.sample.map((t) => html`<li>
            <a href=${`/customers/${t.customer_id}`}>#${t.customer_id}</a>${` ${minute(t.at)}: ${t.from_stage ? label(t.from_stage) : "(new)"} → ${label(t.to_stage)} `}<span class="muted">by ${t.rule} (${t.cause})</span></li>`)}</ul>` : null}
      </div>`}
    </div>`}
  </div>`;
}
