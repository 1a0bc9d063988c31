// A review queue: the items waiting for a person, each with approve/reject.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { can, lacks } from "../../lib/access.js";

export function Queue({ id, title, path, empty, columns, row, decide, onDecided, action }) {
  const items = useApi(path);
  const [error, setError] = useState("");
  const may = can(action);
  async function act(item, approve) {
    setError("");
    try {
      await decide(item, approve);
      items.reload();
      if (onDecided) onDecided();
    } catch (failure) {
      setError(failure.message);
    }
  }
  return html`<div class="panel">
    <h2>${title}</h2>
    ${error ? html`<p class="error" role="alert">${error}</p>` : null}
    ${status(items)}
    ${items.data && (items.data.length === 0 ? html`<p class="muted">${empty}</p>` : html`<div class="table-wrap"><table id=${id}>
      <thead><tr>${columns.map((c) => html`<th>${c}</th>`)}${may ? html`<th></th>` : null}</tr></thead>
      <tbody>${items.data.map((item) => html`<tr>${row(item)}${may ? html`<td class="actions">
        <button type="button" onClick=${() => act(item, true)}>Approve</button>
        <button class="secondary" type="button" onClick=${() => act(item, false)}>Reject</button></td>` : null}</tr>`)}</tbody>
    </table></div>`)}
    ${may ? null : html`<p class="muted small denied">${lacks(action)}</p>`}
  </div>`;
}
