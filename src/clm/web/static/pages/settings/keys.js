// Settings: API keys (create: shown once; revoke).
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { minute } from "../../lib/format.js";
import { problems } from "../../lib/debounce.js";

export function Keys() {
  const keys = useApi("/keys");
  const [created, setCreated] = useState(null);
  const [error, setError] = useState("");

  async function create(event) {
    event.preventDefault();
    const form = event.currentTarget;
    setError("");
    try {
      setCreated(await api("/keys", { method: "POST", body: { kind: form.kind.value, name: form.name.value.trim() } }));
      form.reset();
      keys.reload();
    } catch (failure) {
      setError(problems(failure).join("; "));
    }
  }

  async function revoke(id) {
    if (!confirm("Revoke this key? Anything using it stops working.")) return;
    try {
      await api(`/keys/${id}`, { method: "DELETE" });
      keys.reload();
    } catch (failure) {
      setError(failure.message);
    }
  }

  return html`<div class="panel">
    <h2>API keys</h2>
    <form id="key-form" class="toolbar" onSubmit=${create}>
      <label>Kind<select name="kind"><option value="read">read</option><option value="write">write</option><option value="manage">manage</option></select></label>
      <label>Name<input name="name" maxlength="200" placeholder="what it is for" /></label>
      <button type="submit">Create key</button>
    </form>
    <p class="error" role="alert">${error}</p>
    ${created && html`<p id="new-key" class="panel" role="status">New ${created.kind} key, shown this once: <code>${created.key}</code></p>`}
    ${status(keys)}
    ${keys.data && html`<div class="table-wrap"><table id="keys">
      <thead><tr><th>name</th><th>kind</th><th>prefix</th><th>created</th><th>last used</th><th>status</th><th></th></tr></thead>
      <tbody>${keys.data.map((k) => html`<tr>
        <td>${k.name || "–"}</td><td>${k.kind}</td><td><code>${k.prefix}…</code></td><td>${minute(k.created_at)}</td>
        <td>${minute(k.last_used_at)}</td><td>${k.revoked_at ? `revoked ${minute(k.revoked_at)}` : "active"}</td>
        <td>${k.revoked_at ? null : html`<button class="secondary" type="button" onClick=${() => revoke(k.id)}>Revoke</button>`}</td>
      </tr>`)}</tbody></table></div>`}
  </div>`;
}
