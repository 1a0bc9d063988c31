// Engagement: playbooks with their status, pause/resume, and each one's report (holdout
// uplift with its 95% interval, journeys in flight).
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { useApi, status } from "../lib/hooks.js";
import { api } from "../lib/api.js";
import { label, minute, pct, thousands } from "../lib/format.js";

// A trigger in words: its type and the fields set, leaving out empty ones and defaults.
const TRIGGER_DEFAULTS = { offset_days: 0, yearly: false, every_days: 30 };
function triggerText(trigger) {
  if (!trigger) return "–";
  const parts = Object.entries(trigger)
    .filter(([k, v]) => k !== "type" && v !== null && v !== "" && TRIGGER_DEFAULTS[k] !== v
      && !(Array.isArray(v) && v.length === 0) && !(typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0))
    .map(([k, v]) => `${label(k)} ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return `${label(trigger.type)}${parts.length ? `: ${parts.join(", ")}` : ""}`;
}

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
      <dt>journeys</dt><dd>${Object.keys(r.states).length ? Object.entries(r.states).map(([state, n]) => html`<span class="pill">${label(state)} ${thousands(n)}</span>`) : "none yet"}</dd>
    </dl>`}
  </div>`;
}

const TABS = [
  { name: "playbooks", title: "Playbooks" },
  { name: "referrals", title: "Referral review" },
  { name: "testimonials", title: "Testimonials" },
  { name: "tasks", title: "Task inbox" },
];

function Playbooks({ name }) {
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
      <h2>Playbooks</h2>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
      ${status(playbooks)}
      ${playbooks.data && (playbooks.data.length === 0
        ? html`<p class="muted">No playbooks yet: <code>clm engage playbook apply file.yaml</code>.</p>`
        : html`<div class="table-wrap"><table id="playbooks">
          <thead><tr><th>name</th><th class="num">version</th><th>status</th><th>trigger</th><th>since</th><th></th></tr></thead>
          <tbody>${playbooks.data.map((p) => html`<tr data-playbook=${p.name}>
            <td><a href=${`/engagement/playbooks/${encodeURIComponent(p.name)}`}>${p.name}</a></td>
            <td class="num">${p.version}</td>
            <td><span class=${`pill ${p.status === "paused" ? "neutral" : "happy"}`} data-status>${label(p.status)}</span></td>
            <td class="wrap">${triggerText(p.definition.trigger)}</td>
            <td>${minute(p.created_at)}</td>
            <td><button class="secondary" type="button" onClick=${() => toggle(p)}>${p.status === "paused" ? "Resume" : "Pause"}</button></td>
          </tr>`)}</tbody></table></div>`)}
    </div>
    ${name ? html`<${PlaybookReport} key=${name} name=${name} />` : null}`;
}

// A review queue: the items waiting for a person, each with approve/reject.
function Queue({ id, title, path, empty, columns, row, decide }) {
  const items = useApi(path);
  const [error, setError] = useState("");
  async function act(item, approve) {
    setError("");
    try {
      await decide(item, approve);
      items.reload();
    } catch (failure) {
      setError(failure.message);
    }
  }
  return html`<div class="panel">
    <h2>${title}</h2>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${status(items)}
    ${items.data && (items.data.length === 0 ? html`<p class="muted">${empty}</p>` : html`<div class="table-wrap"><table id=${id}>
      <thead><tr>${columns.map((c) => html`<th>${c}</th>`)}<th></th></tr></thead>
      <tbody>${items.data.map((item) => html`<tr>${row(item)}<td class="actions">
        <button type="button" onClick=${() => act(item, true)}>Approve</button>
        <button class="secondary" type="button" onClick=${() => act(item, false)}>Reject</button></td></tr>`)}</tbody>
    </table></div>`)}
  </div>`;
}

function Referrals() {
  return html`<${Queue} id="referral-queue" title="Referrals waiting for review" path="/engage/referrals?status=review"
    empty="No referral waits for review: the fraud checks flagged none."
    columns=${["code", "referrer", "referee", "why it was flagged"]}
    row=${(r) => html`<td><code>${r.code}</code></td>
      <td><a href=${`/customers/${r.referrer_id}`}>#${r.referrer_id}</a></td>
      <td><a href=${`/customers/${r.referee_id}`}>#${r.referee_id}</a></td>
      <td class="wrap">${r.checks.filter((c) => c.flagged).map((c) => html`<div><b>${label(c.check)}</b>: ${c.detail}</div>`)}</td>`}
    decide=${(r, approve) => api(`/engage/referrals/${r.id}/review`, { method: "POST", body: { approve } })} />`;
}

function Testimonials() {
  return html`<${Queue} id="testimonial-queue" title="Testimonials waiting for approval" path="/engage/testimonials?status=pending"
    empty="No testimonial waits for approval."
    columns=${["from", "rating", "text", "consent", "received"]}
    row=${(t) => html`<td>${t.display_name}${t.customer_id ? html` <a href=${`/customers/${t.customer_id}`}>#${t.customer_id}</a>` : null}</td>
      <td>${t.rating ?? "–"}</td><td class="wrap">${t.text}</td><td>${t.consent ? "yes" : "no"}</td><td>${minute(t.created_at)}</td>`}
    decide=${(t, approve) => api(`/engage/testimonials/${t.id}/review`, { method: "POST", body: { decision: approve ? "approved" : "rejected" } })} />`;
}

function Tasks() {
  const tasks = useApi("/engage/tasks");
  return html`<div class="panel"><h2>Open follow-up tasks</h2>
    ${status(tasks)}
    ${tasks.data && (tasks.data.length === 0 ? html`<p class="muted">No open tasks.</p>` : html`<div class="table-wrap"><table id="tasks">
      <thead><tr><th>task</th><th>customer</th><th>kind</th><th>owner</th><th>created</th></tr></thead>
      <tbody>${tasks.data.map((t) => html`<tr><td class="wrap">${t.title}</td>
        <td>${t.customer_id ? html`<a href=${`/customers/${t.customer_id}`}>#${t.customer_id}</a>` : "–"}</td>
        <td>${label(t.kind)}</td><td>${t.owner || "–"}</td><td>${minute(t.created_at)}</td></tr>`)}</tbody>
    </table></div>`)}
  </div>`;
}

export function Engagement({ tab, name }) {
  const current = name ? "playbooks" : tab || "playbooks";
  return html`<section id="engagement" class="page">
    <h1>Engagement</h1>
    <div role="navigation" aria-label="Engagement views" class="tabs"><ul>
      ${TABS.map((t) => html`<li><a href=${t.name === "playbooks" ? "/engagement" : `/engagement/${t.name}`} aria-current=${t.name === current ? "page" : undefined}>${t.title}</a></li>`)}
    </ul></div>
    ${current === "referrals" ? html`<${Referrals} />`
      : current === "testimonials" ? html`<${Testimonials} />`
      : current === "tasks" ? html`<${Tasks} />`
      : html`<${Playbooks} name=${name} />`}
  </section>`;
}
