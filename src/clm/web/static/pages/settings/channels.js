// Settings > channels: what each channel is configured with (secrets only ever "set"), and
// an edit form that sends only what it holds (PATCH): a secret is kept unless "Replace" is
// ticked and a new one typed, so changing the port can never wipe the SMTP password.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { label } from "../../lib/format.js";
import { can, lacks } from "../../lib/access.js";

// Each channel's fields as the API names them (clm/engage/schemas.py); kind: how to edit.
const FIELDS = {
  email: [["host", "text"], ["port", "number"], ["sender", "text"], ["username", "optional"], ["password", "secret", "optional"],
    ["starttls", "bool"], ["timeout", "number"], ["track_engagement", "bool"], ["connections", "number"]],
  sms: [["base_url", "text"], ["account_sid", "text"], ["auth_token", "secret"], ["sender", "text"], ["timeout", "number"]],
  webhook: [["url", "text"], ["secret", "secret"], ["timeout", "number"]],
};
const DEFAULTS = {
  email: { host: "127.0.0.1", port: 25, sender: "CLM <noreply@localhost>", username: null, password: null, starttls: false, timeout: 10, track_engagement: true, connections: 4 },
  sms: { base_url: "https://api.twilio.com", account_sid: "", auth_token: null, sender: "", timeout: 10 },
  webhook: { url: "", secret: null, timeout: 10 },
};
const asNumber = (text) => (text.trim() === "" || Number.isNaN(Number(text)) ? text : Number(text));
const shownValue = (value) => (value === null || value === undefined ? "–" : value === true ? "yes" : value === false ? "no" : String(value));

// The API's field errors by field name ("port"), the body prefix dropped.
function byField(error) {
  const found = {};
  for (const e of error?.errors || []) {
    const field = (e.loc || []).filter((part) => part !== "body").join(".");
    (found[field] ||= []).push(e.message);
  }
  return found;
}

function ChannelForm({ name, current, onDone }) {
  const start = current || DEFAULTS[name];
  const [values, setValues] = useState(() => Object.fromEntries(FIELDS[name].map(([f, kind]) => [f, kind === "bool" ? Boolean(start[f]) : kind === "secret" ? "" : start[f] ?? ""])));
  const [replace, setReplace] = useState({});
  const [errors, setErrors] = useState({});
  const [refusal, setRefusal] = useState("");
  // A changed field drops its error: the message was about the old value.
  const set = (field, value) => {
    setValues((old) => ({ ...old, [field]: value }));
    setErrors((old) => (old[field] ? Object.fromEntries(Object.entries(old).filter(([f]) => f !== field)) : old));
  };
  const save = async (event) => {
    event.preventDefault();
    const body = {};
    const replaced = [];
    for (const [field, kind] of FIELDS[name]) {
      const value = values[field];
      if (kind === "secret") {
        // Kept unless replaced; a secret that was never set is typed in directly.
        if (current && current[field] === "set" && !replace[field]) continue;
        body[field] = value === "" ? null : value;
        replaced.push(field);
      } else if (kind === "bool") body[field] = value;
      else if (kind === "number") body[field] = asNumber(String(value));
      else if (kind === "optional") body[field] = String(value).trim() === "" ? null : value;
      else body[field] = value;
    }
    try {
      await api(`/engage/channels/${name}`, { method: "PATCH", body });
      const secrets = FIELDS[name].filter(([, kind]) => kind === "secret").map(([f]) => f);
      const said = secrets.map((f) => `${label(f)} ${replaced.includes(f) ? (body[f] === null ? "cleared" : "replaced") : "kept"}`);
      onDone(`Saved ${name}${said.length ? ` (${said.join(", ")})` : ""}.`);
    } catch (failure) {
      const found = byField(failure);
      setErrors(found);
      const known = new Set(FIELDS[name].map(([f]) => f));
      const rest = Object.entries(found).filter(([f]) => !known.has(f)).map(([f, m]) => `${f ? `${f}: ` : ""}${m.join("; ")}`);
      setRefusal([failure.message, ...rest].join(" — "));
      const first = FIELDS[name].find(([f]) => found[f]);
      if (first) document.getElementById(`channel-${name}-${first[0]}`)?.focus();
    }
  };
  const field = ([f, kind, optional]) => {
    const id = `channel-${name}-${f}`;
    const problem = errors[f] ? html`<span class="error field-error" id=${`${id}-error`}>${errors[f].join("; ")}</span>` : null;
    const aria = { "aria-invalid": errors[f] ? "true" : undefined, "aria-describedby": errors[f] ? `${id}-error` : undefined };
    if (kind === "bool") {
      return html`<label class="check"><input type="checkbox" id=${id} checked=${values[f]} onChange=${(e) => set(f, e.currentTarget.checked)} /> ${label(f)}</label>`;
    }
    if (kind === "secret") {
      const isSet = current && current[f] === "set";
      return html`<div class="secret-field">
        ${isSet ? html`<label class="check"><input type="checkbox" id=${`${id}-replace`} checked=${Boolean(replace[f])}
          onChange=${(e) => setReplace((old) => ({ ...old, [f]: e.currentTarget.checked }))} /> Replace the ${label(f)} (set; kept unless replaced)</label>` : null}
        ${!isSet || replace[f] ? html`<label>${isSet ? `New ${label(f)}` : label(f)}${optional ? " (optional)" : ""}
          <input type="password" id=${id} autocomplete="new-password" value=${values[f]} onInput=${(e) => set(f, e.currentTarget.value)} ...${aria} />
          ${isSet && optional ? html`<span class="muted small">empty: no ${label(f)}</span>` : null}${problem}</label>` : problem}
      </div>`;
    }
    return html`<label>${label(f)}${kind === "optional" ? " (optional)" : ""}
      <input id=${id} value=${values[f]} inputmode=${kind === "number" ? "decimal" : undefined} onInput=${(e) => set(f, e.currentTarget.value)} ...${aria} />${problem}</label>`;
  };
  return html`<form class="channel-form" id=${`channel-${name}-form`} onSubmit=${save} aria-label=${`Edit the ${name} channel`}>
    <div class="channel-fields">${FIELDS[name].map(field)}</div>
    ${refusal ? html`<p class="error" role="alert" id=${`channel-${name}-refused`}>${refusal}</p>` : null}
    <div class="toolbar">
      <button type="submit" id=${`channel-${name}-save`}>Save ${name}</button>
      <button type="button" class="secondary" onClick=${() => onDone("")}>Cancel</button>
    </div>
  </form>`;
}

export function Channels() {
  const channels = useApi("/engage/channels");
  const [editing, setEditing] = useState(null);
  const [saved, setSaved] = useState("");
  const done = (message) => {
    setEditing(null);
    setSaved(message);
    if (message) channels.reload();
  };
  return html`<div class="panel" id="channels-configured">
    <h2>Channels</h2>
    ${status(channels)}
    ${channels.data && html`<ul class="plain">${Object.keys(FIELDS).map((name) => {
      const c = channels.data[name];
      return html`<li data-channel=${name}>
        <div class="toolbar channel-head"><span style="flex:1"><b>${name}</b>: ${c ? "configured" : html`<span class="muted">not configured</span>`}</span>
          ${editing === name || !can("channel.edit") ? null : html`<button type="button" class="secondary" id=${`edit-channel-${name}`}
            onClick=${() => { setSaved(""); setEditing(name); }}>${c ? "Edit" : "Set up"}</button>`}</div>
        ${editing === name ? html`<${ChannelForm} name=${name} current=${c} onDone=${done} />`
          : c ? html`<dl class="facts">${Object.entries(c).map(([k, v]) => html`<dt>${label(k)}</dt><dd>${shownValue(v)}</dd>`)}</dl>` : null}
      </li>`;
    })}</ul>
    <p id="channel-saved" role="status" class="ok">${saved}</p>
    <p class="muted">Passwords, tokens and signing secrets are stored, never shown back: an edit keeps each one unless you replace it.</p>`}
  </div>`;
}
