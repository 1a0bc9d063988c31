// Settings: the people of this workspace and their roles (owners and admins, signed in as
// themselves: a key never manages people). Adding someone creates them without a password;
// they choose one with a reset link.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { label, minute } from "../../lib/format.js";
import { problems } from "../../lib/debounce.js";
import { can } from "../../lib/access.js";
import { CommitSelect } from "../../lib/select.js";

const ROLES = ["owner", "admin", "marketer", "customer_success", "viewer"];  // most powerful first
// (the add form lists them least powerful first: its default, and what a reset returns to, is viewer)

export function Members() {
  const may = can("members.manage");
  const members = useApi(may ? "/members" : null);
  const [error, setError] = useState("");
  const [done, setDone] = useState("");

  async function put(email, role) {
    setError("");
    setDone("");
    try {
      const person = await api("/members", { method: "PUT", body: { email, role } });
      setDone(`${person.email} is now ${label(role)}.`);
      members.reload();
      return true;
    } catch (failure) {
      setError(problems(failure).join("; "));
      return false;
    }
  }

  async function add(event) {
    event.preventDefault();
    const form = event.currentTarget;
    if (await put(form.email.value.trim(), form.role.value)) form.reset();
  }

  async function remove(person) {
    if (!confirm(`Remove ${person.email} from this workspace? They can no longer sign in to it.`)) return;
    setError("");
    try {
      await api(`/members/${person.id}`, { method: "DELETE" });
      setDone(`${person.email} was removed.`);
      members.reload();
    } catch (failure) {
      setError(problems(failure).join("; "));
    }
  }

  if (!may || (members.error && [401, 403].includes(members.error.status))) {
    return html`<div class="panel"><h2>Members</h2><p id="members-denied" class="muted">Only an owner or an admin, signed in
      as themselves, manages the people of a workspace (a key never does).</p></div>`;
  }
  return html`<div class="panel">
    <h2>Members</h2>
    <form id="member-form" class="toolbar" onSubmit=${add}>
      <label>Email<input name="email" type="email" required maxlength="320" placeholder="name@example.com" /></label>
      <label>Role<select name="role">${[...ROLES].reverse().map((r) => html`<option value=${r}>${label(r)}</option>`)}</select></label>
      <button type="submit">Add or change</button>
    </form>
    <p class="error" role="alert">${error}</p>
    <p class="ok" role="status">${done}</p>
    ${status(members)}
    ${members.data && html`<div class="table-wrap"><table id="members">
      <thead><tr><th>email</th><th>role</th><th>password</th><th>added</th><th></th></tr></thead>
      <tbody>${members.data.map((person) => {
        const role = person.memberships[0]?.role;
        return html`<tr data-member=${person.email}><td>${person.email}${person.disabled_at ? html` <span class="pill unhappy">disabled</span>` : null}</td>
          <td><${CommitSelect} aria-label=${`role of ${person.email}`} value=${role} commit=${(chosen) => put(person.email, chosen)}>
            ${ROLES.map((r) => html`<option value=${r}>${label(r)}</option>`)}<//></td>
          <td>${person.has_password ? "set" : "not yet (reset link)"}</td><td>${minute(person.created_at)}</td>
          <td><button class="secondary" type="button" onClick=${() => remove(person)}>Remove</button></td></tr>`;
      })}</tbody></table></div>`}
  </div>`;
}
