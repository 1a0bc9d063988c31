// Playbooks: status, pause/resume, a link to edit each; one playbook's report (holdout
// uplift with its 95% interval) and its journeys in flight, paged in the database.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { CommitSelect } from "../../lib/select.js";
import { useApi, status } from "../../lib/hooks.js";
import { api, query } from "../../lib/api.js";
import { navigate } from "../../lib/router.js";
import { label, minute, pct, percentagePoints, thousands } from "../../lib/format.js";
import { can, lacks } from "../../lib/access.js";

// A trigger in words: its type and the fields set, leaving out empty ones and defaults.
const TRIGGER_DEFAULTS = { offset_days: 0, yearly: false, every_days: 30 };
function triggerText(trigger) {
  if (!trigger) return "–";
  const parts = Object.entries(trigger)
    .filter(([k, v]) => k !== "type" && v !== null && v !== "" && TRIGGER_DEFAULTS[k] !== v
      && !(Array.isArray(v) && v.length === 0) && !(typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0))
    .map(([k, v]) => `${k === trigger.type ? "" : `${label(k)} `}${typeof v === "object" ? JSON.stringify(v) : v}`);
  return `${label(trigger.type)}${parts.length ? `: ${parts.join(", ")}` : ""}`;
}

function PlaybookReport({ name }) {
  const report = useApi(`/engage/playbooks/${encodeURIComponent(name)}/report`);
  const r = report.data;
  return html`<div class="panel" id="playbook-report">
    <h2>${name}: report</h2>
    ${status(report)}
    ${r && html`<dl class="facts">
      <dt>goal</dt><dd>${r.goal || "none set: uplift needs a goal"}</dd>
      <dt>treated</dt><dd>${thousands(r.treatment.enrolled)} enrolled, ${thousands(r.treatment.reached_goal)} reached the goal (${pct(r.treatment.rate)})</dd>
      <dt>holdout</dt><dd>${thousands(r.control.enrolled)} enrolled, ${thousands(r.control.reached_goal)} reached the goal (${pct(r.control.rate)})</dd>
      <dt>uplift</dt><dd id="uplift">${r.uplift === null ? "not enough data" : html`${percentagePoints(r.uplift)} <span class="muted">(95% CI ${percentagePoints(r.ci_low)} to ${percentagePoints(r.ci_high)}${r.ci_low > 0 ? ": better than the holdout" : r.ci_high < 0 ? ": worse than the holdout" : ": not distinguishable from the holdout"})</span>`}</dd>
      ${Object.keys(r.variants).length ? html`<dt>variants</dt><dd>${Object.entries(r.variants).map(([v, a]) => html`<span class="pill">${v}: ${pct(a.rate)} of ${thousands(a.enrolled)}</span>`)}</dd>` : null}
    </dl>`}
  </div>`;
}

const JOURNEY_STATES = [
  ["in_flight", "in flight (running, waiting, failed)"], ["waiting", "waiting for an event"], ["active", "running"],
  ["failed", "failed"], ["completed", "completed"], ["exited", "exited"], ["all", "all"],
];

function waitText(j) {
  if (j.state === "failed") return "–";
  if (j.waiting_for) return html`for <b>${j.waiting_for}</b> until ${minute(j.wake_at)}`;
  return j.wake_at ? `until ${minute(j.wake_at)}` : "–";
}

function Journeys({ name, params }) {
  const state = params.get("state") || "in_flight";
  const page = Number(params.get("page") || 1);
  const base = `/engagement/playbooks/${encodeURIComponent(name)}`;
  const list = useApi(`/engage/playbooks/${encodeURIComponent(name)}/journeys${query({ state, page, per_page: 25 })}`);
  const show = (change) => navigate(`${base}${query({ state: state === "in_flight" ? "" : state, page: page > 1 ? page : "", ...change })}`);
  const data = list.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.per_page)) : 1;
  const counts = data ? Object.entries(data.counts) : [];
  return html`<div class="panel" id="journeys">
    <h2>Journeys</h2>
    <div class="toolbar">
      <label>Show <${CommitSelect} id="journey-state" value=${state} commit=${(chosen) => show({ state: chosen === "in_flight" ? "" : chosen, page: "" })}>
        ${JOURNEY_STATES.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
      <//></label>
      <span class="muted">${counts.length ? counts.map(([s, n]) => `${thousands(n)} ${label(s)}`).join(" · ") : ""}</span>
    </div>
    ${status(list)}
    ${data && (data.items.length === 0 ? html`<p class="muted">No journeys ${state === "all" ? "yet" : `here (${label(state)})`}.</p>` : html`<div class="table-wrap"><table id="journey-table" class="stack">
      <thead><tr><th>customer</th><th>state</th><th>step</th><th>waiting</th><th>arm</th><th>enrolled</th><th>error</th></tr></thead>
      <tbody>${data.items.map((j) => html`<tr data-journey=${j.id}>
        <td><a href=${`/customers/${j.customer_id}`}>${j.customer}</a></td>
        <td data-label="state"><span class=${`pill ${j.state === "failed" ? "unhappy" : j.state === "waiting" ? "neutral" : ""}`}>${label(j.state)}</span></td>
        <td data-label="step">${j.step ? html`${j.step} <span class="muted">(${j.step_number} of ${j.steps})</span>` : "–"}</td>
        <td data-label="waiting">${waitText(j)}</td>
        <td data-label="arm">${j.arm === "control" ? "holdout" : "treated"}${j.variant ? ` · ${j.variant}` : ""}</td>
        <td data-label="enrolled">${minute(j.enrolled_at)}</td>
        <td class="wrap error">${j.error || ""}</td>
      </tr>`)}</tbody></table></div>
      <nav class="pager" aria-label="Journey pages">
        <button type="button" class="secondary" disabled=${page <= 1} onClick=${() => show({ page: page - 1 > 1 ? page - 1 : "" })}>Previous</button>
        <span>Page ${thousands(page)} of ${thousands(pages)} · ${thousands(data.total)} journeys</span>
        <button type="button" class="secondary" disabled=${page >= pages} onClick=${() => show({ page: page + 1 })}>Next</button>
      </nav>`)}
  </div>`;
}

export function Playbooks({ name, params }) {
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

  return html`<div class="panel">
      <div class="toolbar"><h2 style="flex:1;margin:0">Playbooks</h2>
        ${can("playbook.edit") ? html`<a id="new-playbook" class="button" href="/engagement/new">New playbook</a>` : null}</div>
      ${can("playbook.edit") ? null : html`<p class="muted small denied">${lacks("playbook.edit")}</p>`}
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
      ${status(playbooks)}
      ${playbooks.data && (playbooks.data.length === 0
        ? html`<p class="muted">No playbooks yet${can("playbook.edit") ? html`: write one with <a href="/engagement/new">New playbook</a>` : ""}.</p>`
        : html`<div class="table-wrap"><table id="playbooks" class="stack">
          <thead><tr><th>name</th><th class="num">version</th><th>status</th><th>trigger</th><th>saved</th><th></th></tr></thead>
          <tbody>${playbooks.data.map((p) => html`<tr data-playbook=${p.name} aria-current=${p.name === name ? "true" : undefined}>
            <td><a href=${`/engagement/playbooks/${encodeURIComponent(p.name)}`}>${p.name}</a></td>
            <td data-label="version" class="num">${p.version}</td>
            <td data-label="status"><span class=${`pill ${p.status === "paused" ? "neutral" : "happy"}`} data-status>${label(p.status)}</span></td>
            <td data-label="trigger" class="wrap">${triggerText(p.definition.trigger)}</td>
            <td data-label="saved">${minute(p.created_at)}</td>
            <td class="actions">${can(p.status === "paused" ? "playbook.resume" : "playbook.pause") ? html`<button class="secondary" type="button" data-toggle onClick=${() => toggle(p)}>${p.status === "paused" ? "Resume" : "Pause"}</button>` : null}
              ${can("playbook.edit") ? html`<a class="button secondary" href=${`/engagement/playbooks/${encodeURIComponent(p.name)}/edit`}>Edit</a>` : null}</td>
          </tr>`)}</tbody></table></div>`)}
    </div>
    ${name ? html`<div class="panels"><${PlaybookReport} key=${name} name=${name} /></div>
      <${Journeys} key=${name} name=${name} params=${params} />` : null}`;
}
