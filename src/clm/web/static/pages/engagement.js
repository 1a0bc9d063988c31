// Engagement: playbooks with their status, pause/resume, and each one's report (holdout
// uplift with its 95% interval, journeys in flight).
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { useApi, status } from "../lib/hooks.js";
import { api } from "../lib/api.js";
import { label, minute, pct, thousands } from "../lib/format.js";

function PlaybookReport({ name }) {
  const report = useApi(`/engage/playbooks/${encodeURIComponent(name)}/report`);
  const r = report.data;
  return html`<div class="panel" id="playbook-report">
    <h2>${name}: report</h2>
    ${status(report)}
    ${r && html`<dl class="facts">
      <dt>goal</dt><dd>${r.goal || "–"}</dd>
      <dt>treated</dt><dd>${thousands(r.treatment.enrolled)} enrolled, ${thousands(r.treatment.reached_goal)} reached the goal (${pct(r.treatment.rate)})</dd>
      <dt>holdout</dt><dd>${thousands(r.control.enrolled)} enrolled, ${thousands(r.control.reached_goal)} reached the goal (${pct(r.control.rate)})</dd>
      <dt>uplift</dt><dd id="uplift">${r.uplift === null ? "not enough data" : html`${pct(r.uplift)} <span class="muted">(95% CI ${pct(r.ci_low)} to ${pct(r.ci_high)})</span>`}</dd>
      <dt>journeys</dt><dd>${Object.entries(r.states).map(([state, n]) => html`<span class="pill">${label(state)} ${thousands(n)}</span>`)}</dd>
    </dl>`}
  </div>`;
}

export function Engagement({ name }) {
  const playbooks = useApi("/engage/playbooks");
  const [error, setError] = useState("");

  async function toggle(playbook) {
    setError("");
    const action = playbook.status === "paused" ? "resume" : "pause";
    try {
      await api(`/engage/playbooks/${encodeURIComponent(playbook.name)}/${action}`, { method: "POST" });
      playbooks.reload();
    } catch (failure) {
      setError(failure.message);
    }
  }

  return html`<section id="engagement" class="page">
    <h1>Engagement</h1>
    <div role="navigation" aria-label="Engagement views" class="tabs"><ul><li><a href="/engagement" aria-current="page">Playbooks</a></li></ul></div>
    <div class="panel">
      <h2>Playbooks</h2>
      <p class="error" role="alert">${error}</p>
      ${status(playbooks)}
      ${playbooks.data && (playbooks.data.length === 0
        ? html`<p class="muted">No playbooks yet: <code>clm engage playbook apply file.yaml</code>.</p>`
        : html`<div class="table-wrap"><table id="playbooks">
          <thead><tr><th>name</th><th class="num">version</th><th>status</th><th>trigger</th><th>since</th><th></th></tr></thead>
          <tbody>${playbooks.data.map((p) => html`<tr data-playbook=${p.name}>
            <td><a href=${`/engagement/playbooks/${encodeURIComponent(p.name)}`}>${p.name}</a></td>
            <td class="num">${p.version}</td>
            <td><span class=${`pill ${p.status}`} data-status>${label(p.status)}</span></td>
            <td class="wrap"><code>${JSON.stringify(p.definition.trigger || {})}</code></td>
            <td>${minute(p.created_at)}</td>
            <td><button class="secondary" type="button" onClick=${() => toggle(p)}>${p.status === "paused" ? "Resume" : "Pause"}</button></td>
          </tr>`)}</tbody></table></div>`)}
    </div>
    ${name ? html`<${PlaybookReport} key=${name} name=${name} />` : null}
  </section>`;
}
