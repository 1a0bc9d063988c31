// The team's follow-up tasks (a detractor to call back, a playbook step that needs a person):
// assign to someone, complete, reopen. Filters live in the URL.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { CommitSelect } from "../../lib/select.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { navigate } from "../../lib/router.js";
import { label, minute, thousands } from "../../lib/format.js";
import { can } from "../../lib/access.js";

function Assign({ task, onDone }) {
  const [owner, setOwner] = useState(task.owner || "");
  return html`<form class="inline assign" onSubmit=${(e) => { e.preventDefault(); onDone(task, { owner: owner.trim() }); }}>
    <input aria-label=${`Owner of task ${task.id}`} name="owner" value=${owner} maxlength="255" placeholder="unassigned"
      onInput=${(e) => setOwner(e.currentTarget.value)} />
    <button type="submit" class="secondary" disabled=${owner.trim() === (task.owner || "")}>Assign</button>
  </form>`;
}

export function Tasks({ params }) {
  const state = params.get("status") || "open";
  const owner = params.get("owner");
  const wanted = new URLSearchParams({ status: state });
  if (owner !== null) wanted.set("owner", owner); // "" is the unassigned ones
  const tasks = useApi(`/engage/tasks?${wanted}`);
  const [error, setError] = useState("");
  const show = (change) => {
    const next = { status: state === "open" ? "" : state, owner: owner ?? undefined, ...change };
    const search = new URLSearchParams();
    if (next.status) search.set("status", next.status);
    if (next.owner !== undefined && next.owner !== null) search.set("owner", next.owner);
    const text = search.toString();
    navigate(`/engagement/tasks${text ? `?${text}` : ""}`);
  };
  async function change(task, body) {
    setError("");
    try {
      await api(`/engage/tasks/${task.id}`, { method: "PATCH", body });
      tasks.reload();
    } catch (failure) {
      setError(failure.message);
    }
  }
  const data = tasks.data;
  return html`<div class="panel"><h2>${state === "done" ? "Completed" : "Open"} follow-up tasks ${data ? html`<span class="muted">${thousands(data.length)}</span>` : null}</h2>
    <div class="toolbar">
      <label>Show <${CommitSelect} id="task-status" value=${state} commit=${(chosen) => show({ status: chosen === "open" ? "" : chosen })}>
        <option value="open">open</option><option value="done">completed</option><//></label>
      <label>Owner <${CommitSelect} id="task-owner" value=${owner === null ? "*" : owner === "" ? "" : "name"} commit=${(chosen) => show({ owner: chosen === "*" ? null : chosen === "" ? "" : owner || "" })}>
        <option value="*">anyone</option><option value="">unassigned</option>${owner ? html`<option value="name">${owner}</option>` : null}<//></label>
    </div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${status(tasks)}
    ${data && (data.length === 0 ? html`<p class="muted">No ${state === "done" ? "completed" : "open"} tasks.</p>` : html`<div class="table-wrap"><table id="tasks" class="stack">
      <thead><tr><th>task</th><th>customer</th><th>kind</th><th>owner</th><th>created</th><th></th></tr></thead>
      <tbody>${data.map((t) => html`<tr data-task=${t.id}><td class="wrap">${t.title}</td>
        <td data-label="customer">${t.customer_id ? html`<a href=${`/customers/${t.customer_id}`}>#${t.customer_id}</a>` : "–"}</td>
        <td data-label="kind">${label(t.kind)}</td>
        <td data-label="owner">${state === "open" && can("task.update") ? html`<${Assign} key=${`${t.id}:${t.owner}`} task=${t} onDone=${change} />`
          : t.owner || html`<span class="muted">unassigned</span>`}</td>
        <td data-label="created">${minute(t.created_at)}${t.closed_at ? html`<br /><span class="muted">done ${minute(t.closed_at)}</span>` : null}</td>
        <td class="actions">${!can("task.update") ? null : state === "open"
          ? html`<button type="button" data-complete onClick=${() => change(t, { status: "done" })}>Complete</button>`
          : html`<button type="button" class="secondary" onClick=${() => change(t, { status: "open" })}>Reopen</button>`}</td></tr>`)}</tbody>
    </table></div>`)}
  </div>`;
}
