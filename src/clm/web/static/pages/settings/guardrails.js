// Settings: the guardrails every send obeys (consent, frequency caps, quiet hours, the
// happy-only upsell rule, retries), edited with each problem shown at its field, and the
// channels configured and their edit form (channels.js: secrets are never shown back, only
// "set", and an edit keeps each one unless replaced).
import { useEffect, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { Channels } from "./channels.js";
import { can, lacks } from "../../lib/access.js";

const CHANNELS = ["email", "sms", "webhook"];
const hhmm = (value) => (value ? String(value).slice(0, 5) : "");

// The policy as the form holds it: strings as typed, so the server judges every value.
function toForm(policy) {
  return {
    marketing_requires_opt_in: policy.marketing_requires_opt_in,
    caps: policy.caps.map((c) => ({ channel: c.channel, max_messages: String(c.max_messages), window_hours: String(c.window_hours) })),
    quiet: policy.quiet_hours !== null,
    start: hhmm(policy.quiet_hours?.start ?? "21:00"),
    end: hhmm(policy.quiet_hours?.end ?? "08:00"),
    default_timezone: policy.quiet_hours?.default_timezone ?? "UTC",
    upsell_requires_happy: policy.upsell_requires_happy,
    upsell_categories: policy.upsell_categories.join(", "),
    stable_days: String(policy.stable_days),
    max_attempts: String(policy.max_attempts),
    backoff_seconds: String(policy.backoff_seconds),
  };
}

const asNumber = (text) => (text.trim() === "" || Number.isNaN(Number(text)) ? text : Number(text));

function toPolicy(form) {
  return {
    marketing_requires_opt_in: form.marketing_requires_opt_in,
    caps: form.caps.map((c) => ({ channel: c.channel, max_messages: asNumber(c.max_messages), window_hours: asNumber(c.window_hours) })),
    quiet_hours: form.quiet ? { start: form.start, end: form.end, default_timezone: form.default_timezone.trim() } : null,
    upsell_requires_happy: form.upsell_requires_happy,
    upsell_categories: form.upsell_categories.split(",").map((s) => s.trim()).filter(Boolean),
    stable_days: asNumber(form.stable_days),
    max_attempts: asNumber(form.max_attempts),
    backoff_seconds: asNumber(form.backoff_seconds),
  };
}

// The API's 422 errors by field: "quiet_hours.start", "caps.0.max_messages", ...
function byField(error) {
  const found = {};
  for (const e of error.errors || []) {
    const path = (e.loc || []).filter((part) => part !== "body").join(".");
    (found[path] ||= []).push(e.message);
  }
  return found;
}

function Policy() {
  const policy = useApi("/engage/policy");
  const [form, setForm] = useState(null);
  const [errors, setErrors] = useState({});
  const [saved, setSaved] = useState("");
  useEffect(() => {
    if (policy.data) setForm(toForm(policy.data));
  }, [policy.data]);
  if (!form) return status(policy);

  const set = (name) => (e) => setForm({ ...form, [name]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const setCap = (i, name) => (e) => setForm({ ...form, caps: form.caps.map((c, j) => (i === j ? { ...c, [name]: e.currentTarget.value } : c)) });
  // A field's problems under it; the input is marked invalid and names them for screen readers.
  const problem = (path) => (errors[path] ? html`<span class="error field-error" id=${`err-${path}`} role="alert">${errors[path].join("; ")}</span>` : null);
  const invalid = (path) => (errors[path] ? { "aria-invalid": "true", "aria-describedby": `err-${path}` } : {});
  const rest = Object.keys(errors).filter((path) => !document.querySelector(`[data-field="${path}"]`));

  async function save(event) {
    event.preventDefault();
    setSaved("");
    try {
      const answer = await api("/engage/policy", { method: "PUT", body: toPolicy(form) });
      setErrors({});
      setForm(toForm(answer));
      setSaved("Saved: every send from now on obeys these guardrails.");
    } catch (error) {
      const found = byField(error);
      setErrors(Object.keys(found).length ? found : { "": [error.message] });
    }
  }

  return html`<form id="policy-form" class="panel" onSubmit=${save} novalidate>
    <h2>Guardrails</h2>
    <fieldset class="plainset"><legend>Consent</legend>
      <label class="check"><input type="checkbox" name="marketing_requires_opt_in" checked=${form.marketing_requires_opt_in} onChange=${set("marketing_requires_opt_in")} />
        Marketing needs an opt-in (transactional messages do not)</label></fieldset>
    <fieldset class="plainset"><legend>Frequency caps (marketing messages per channel)</legend>
      ${form.caps.map((cap, i) => html`<div class="toolbar cap" data-field=${`caps.${i}`}>
        <label>Channel<select value=${cap.channel} onChange=${setCap(i, "channel")} data-field=${`caps.${i}.channel`}>${CHANNELS.map((c) => html`<option value=${c}>${c}</option>`)}</select>${problem(`caps.${i}.channel`)}</label>
        <label>At most<input name=${`cap-${i}-max`} inputmode="numeric" size="5" value=${cap.max_messages} onInput=${setCap(i, "max_messages")} data-field=${`caps.${i}.max_messages`} ...${invalid(`caps.${i}.max_messages`)} />${problem(`caps.${i}.max_messages`)}</label>
        <label>messages per (hours)<input name=${`cap-${i}-hours`} inputmode="decimal" size="6" value=${cap.window_hours} onInput=${setCap(i, "window_hours")} data-field=${`caps.${i}.window_hours`} ...${invalid(`caps.${i}.window_hours`)} />${problem(`caps.${i}.window_hours`)}</label>
        <button class="secondary" type="button" onClick=${() => setForm({ ...form, caps: form.caps.filter((_, j) => j !== i) })}>Remove</button>
      </div>`)}
      <button class="secondary" type="button" onClick=${() => setForm({ ...form, caps: [...form.caps, { channel: "email", max_messages: "3", window_hours: "168" }] })}>Add a cap</button>
    </fieldset>
    <fieldset class="plainset"><legend>Quiet hours (the customer's own time zone)</legend>
      <label class="check"><input type="checkbox" name="quiet" checked=${form.quiet} onChange=${set("quiet")} /> No marketing during quiet hours</label>
      ${form.quiet && html`<div class="toolbar">
        <label>From (HH:MM)<input id="quiet-start" name="start" size="6" value=${form.start} onInput=${set("start")} data-field="quiet_hours.start" ...${invalid("quiet_hours.start")} />${problem("quiet_hours.start")}</label>
        <label>Until (HH:MM)<input id="quiet-end" name="end" size="6" value=${form.end} onInput=${set("end")} data-field="quiet_hours.end" ...${invalid("quiet_hours.end")} />${problem("quiet_hours.end")}</label>
        <label>Time zone when the customer's is unknown<input id="quiet-zone" name="default_timezone" size="18" value=${form.default_timezone} onInput=${set("default_timezone")} data-field="quiet_hours.default_timezone" ...${invalid("quiet_hours.default_timezone")} />${problem("quiet_hours.default_timezone")}</label>
      </div>`}
    </fieldset>
    <fieldset class="plainset"><legend>Upsell</legend>
      <label class="check"><input type="checkbox" name="upsell_requires_happy" checked=${form.upsell_requires_happy} onChange=${set("upsell_requires_happy")} />
        Upsell and cross-sell only to customers who are happy and stable</label>
      <div class="toolbar">
        <label>… and have been for (days)<input name="stable_days" inputmode="numeric" size="5" value=${form.stable_days} onInput=${set("stable_days")} data-field="stable_days" ...${invalid("stable_days")} />${problem("stable_days")}</label>
        <label>Categories counted as upsell<input name="upsell_categories" size="24" value=${form.upsell_categories} onInput=${set("upsell_categories")} data-field="upsell_categories" ...${invalid("upsell_categories")} />${problem("upsell_categories")}</label>
      </div></fieldset>
    <fieldset class="plainset"><legend>Retries</legend><div class="toolbar">
      <label>Attempts per message<input name="max_attempts" inputmode="numeric" size="5" value=${form.max_attempts} onInput=${set("max_attempts")} data-field="max_attempts" ...${invalid("max_attempts")} />${problem("max_attempts")}</label>
      <label>First retry after (seconds)<input name="backoff_seconds" inputmode="decimal" size="6" value=${form.backoff_seconds} onInput=${set("backoff_seconds")} data-field="backoff_seconds" ...${invalid("backoff_seconds")} />${problem("backoff_seconds")}</label>
    </div></fieldset>
    ${rest.length ? html`<ul id="policy-errors" class="problems" role="alert">${rest.map((path) => html`<li>${path ? `${path}: ` : ""}${errors[path].join("; ")}</li>`)}</ul>` : null}
    <div class="toolbar">${can("policy.save") ? html`<button id="save-policy" type="submit">Save guardrails</button>` : html`<span class="muted denied">${lacks("policy.save")}</span>`}
      <span id="policy-saved" role="status" class="ok">${saved}</span></div>
  </form>`;
}

export function Guardrails() {
  return html`<div class="panels"><${Policy} /><${Channels} /></div>`;
}
