// The playbook form: trigger, audience (holdout, re-entry), goal and steps (send with
// channel and content, wait, wait until, task, exit) as fields. It edits the same draft the
// YAML holds: the draft comes from the server's check of the text (`draft`), and every change
// is written back into the text by the server (POST /engage/playbooks/yaml: only what changed,
// the comments and layout kept), so both editors share
// one text, one check and its line-numbered problems. Keys the form has no field for (a
// branch's conditions, a split's variants, a template) are kept as they are. A select's choice
// counts once made (lib/select.js): each arrow key through the trigger types was a request, and
// passing a type dropped the fields of the one left ("to: at_risk" gone on the way back).
import { html } from "../../lib/html.js";
import { CommitSelect } from "../../lib/select.js";
import { label } from "../../lib/format.js";

const TRIGGERS = ["stage_changed", "health_changed", "event", "date", "schedule", "segment_entered"];
const STEP_TYPES = ["send", "wait", "wait_until", "task", "exit", "branch", "split", "update"];
const CHANNELS = ["email", "sms", "webhook"];
const HEALTH = ["happy", "at_risk", "unhappy"];
// Trigger fields per type: [key, title, kind].
const TRIGGER_FIELDS = {
  stage_changed: [["to", "Stage entered", "text"], ["from", "Coming from (optional)", "text"]],
  health_changed: [["to", "Health state", "health"]],
  event: [["event", "Event name", "text"]],
  date: [["trait", "Trait holding the date", "text"], ["offset_days", "Days after (negative: before)", "number"]],
  schedule: [["every_days", "Every (days)", "number"]],
  segment_entered: [["segment", "Saved segment", "segment"]],
};
const STEP_FIELDS = {
  send: [["channel", "Channel", "channel"], ["category", "Category", "text"], ["content.subject", "Subject", "text"], ["content.text", "Text", "long"]],
  wait: [["days", "Days", "number"], ["hours", "Hours", "number"]],
  wait_until: [["event", "Until event", "text"], ["days", "At most (days)", "number"], ["on_timeout", "Then, on timeout, go to step", "text"]],
  task: [["title", "Task", "text"], ["owner", "Owner (optional)", "text"]],
  exit: [["reason", "Reason (optional)", "text"]],
};

// Text as typed becomes a number where it is one; anything else stays text for the check to name.
const typed = (kind, text) => (kind === "number" && text.trim() !== "" && Number.isFinite(Number(text)) ? Number(text) : text);
const get = (object, path) => path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), object);
function put(object, path, value) {
  const [head, ...rest] = path.split(".");
  const copy = { ...(object || {}) };
  if (rest.length) copy[head] = put(copy[head], rest.join("."), value);
  else if (value === "" || value === undefined) delete copy[head];
  else copy[head] = value;
  return copy;
}
const shown = (value) => (value === undefined || value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value));

function Field({ id, title, kind, value, onChange, segments }) {
  const text = shown(value);
  const change = (e) => onChange(typed(kind, e.currentTarget.value));
  let input;
  if (kind === "health" || kind === "channel" || kind === "segment") {
    const options = kind === "health" ? HEALTH : kind === "channel" ? CHANNELS : segments;
    input = html`<${CommitSelect} id=${id} value=${text} commit=${(choice) => onChange(typed(kind, choice))}>
      ${kind === "channel" ? null : html`<option value="">choose…</option>`}
      ${options.map((o) => html`<option value=${o}>${label(o)}</option>`)}
      ${text && !options.includes(text) ? html`<option value=${text}>${text}</option>` : null}<//>`;
  } else if (kind === "long") {
    input = html`<textarea id=${id} rows="3" value=${text} onInput=${change}></textarea>`;
  } else {
    input = html`<input id=${id} value=${text} inputmode=${kind === "number" ? "decimal" : undefined} onInput=${change} />`;
  }
  return html`<label class=${kind === "long" ? "wide" : ""}>${title}${input}</label>`;
}

function StepCard({ step, index, count, change, move, remove }) {
  const fields = STEP_FIELDS[step.type];
  const base = `pb-step-${index}`;
  return html`<li class="pb-step" data-step=${index}>
    <div class="pb-step-head">
      <span class="pb-step-n">${index + 1}.</span>
      <label>Id<input id=${`${base}-id`} value=${shown(step.id)} onInput=${(e) => change({ ...step, id: e.currentTarget.value })} /></label>
      <label>Type<${CommitSelect} id=${`${base}-type`} value=${step.type} commit=${(type) => change({ ...step, type })}>
        ${STEP_TYPES.map((t) => html`<option value=${t}>${label(t)}</option>`)}<//></label>
      <span class="pb-step-moves">
        <button type="button" class="secondary" aria-label=${`Move step ${index + 1} up`} disabled=${index === 0} onClick=${() => move(-1)}>↑</button>
        <button type="button" class="secondary" aria-label=${`Move step ${index + 1} down`} disabled=${index === count - 1} onClick=${() => move(1)}>↓</button>
        <button type="button" class="secondary" aria-label=${`Remove step ${index + 1}`} onClick=${remove}>Remove</button>
      </span>
    </div>
    ${fields ? html`<div class="pb-fields">${fields.map(([path, title, kind]) => html`<${Field} id=${`${base}-${path.replace(".", "-")}`} title=${title} kind=${kind}
        value=${get(step, path)} onChange=${(v) => change(put(step, path, v))} />`)}</div>`
      : html`<p class="muted small">A ${label(step.type)} step's fields are edited in the YAML; the form keeps them.</p>`}
  </li>`;
}

// draft: the playbook as data; onChange(next draft). segments: saved segment names.
export function PlaybookForm({ draft, onChange, segments }) {
  const trigger = draft.trigger && typeof draft.trigger === "object" ? draft.trigger : {};
  const steps = Array.isArray(draft.steps) ? draft.steps : [];
  const goal = draft.goal && typeof draft.goal === "object" ? draft.goal : {};
  const set = (path, value) => onChange(put(draft, path, value));
  const setSteps = (next) => onChange({ ...draft, steps: next });
  const setTrigger = (type) => {
    // A new type keeps only what it uses (a stage trigger's "to" means nothing to a schedule).
    const keep = (TRIGGER_FIELDS[type] || []).map(([k]) => k);
    onChange({ ...draft, trigger: Object.fromEntries([["type", type], ...Object.entries(trigger).filter(([k]) => keep.includes(k))]) });
  };
  const addStep = () => {
    const ids = new Set(steps.map((s) => s.id));
    let n = steps.length + 1;
    while (ids.has(`step-${n}`)) n += 1;
    setSteps([...steps, { id: `step-${n}`, type: "wait", days: 3 }]);
    setTimeout(() => document.getElementById(`pb-step-${steps.length}-id`)?.focus(), 0);
  };
  return html`<div class="pb-form" id="playbook-form">
    <div class="pb-fields">
      <${Field} id="pb-name" title="Name" kind="text" value=${draft.name} onChange=${(v) => set("name", v)} />
      <${Field} id="pb-description" title="Description" kind="text" value=${draft.description} onChange=${(v) => set("description", v)} />
    </div>
    <fieldset class="plainset"><legend>Trigger</legend><div class="pb-fields">
      <label>When<${CommitSelect} id="pb-trigger-type" value=${trigger.type || ""} commit=${setTrigger}>
        ${trigger.type ? null : html`<option value="">choose…</option>`}
        ${TRIGGERS.map((t) => html`<option value=${t}>${label(t)}</option>`)}<//></label>
      ${(TRIGGER_FIELDS[trigger.type] || []).map(([key, title, kind]) => html`<${Field} id=${`pb-trigger-${key}`} title=${title} kind=${kind}
        value=${trigger[key]} segments=${segments} onChange=${(v) => set(`trigger.${key}`, v)} />`)}
    </div></fieldset>
    <fieldset class="plainset"><legend>Audience</legend><div class="pb-fields">
      <${Field} id="pb-holdout" title="Holdout (0–0.5 of those triggered get nothing)" kind="number" value=${draft.holdout} onChange=${(v) => set("holdout", v)} />
      <label class="check"><input type="checkbox" id="pb-reentry" checked=${Boolean(draft.reentry)} onChange=${(e) => set("reentry", e.currentTarget.checked || undefined)} /> A customer may go through it again</label>
    </div></fieldset>
    <fieldset class="plainset"><legend>Goal</legend><div class="pb-fields">
      <${Field} id="pb-goal-event" title="Event" kind="text" value=${goal.event} onChange=${(v) => set("goal.event", v)} />
      <${Field} id="pb-goal-stage" title="or stage" kind="text" value=${goal.stage} onChange=${(v) => set("goal.stage", v)} />
      <${Field} id="pb-goal-within_days" title="Within (days)" kind="number" value=${goal.within_days} onChange=${(v) => set("goal.within_days", v)} />
    </div></fieldset>
    <fieldset class="plainset"><legend>Steps</legend>
      <ol class="plain pb-steps">${steps.map((step, i) => html`<${StepCard} key=${i} step=${step} index=${i} count=${steps.length}
        change=${(next) => setSteps(steps.map((s, j) => (j === i ? next : s)))}
        move=${(by) => { const next = [...steps]; [next[i], next[i + by]] = [next[i + by], next[i]]; setSteps(next); }}
        remove=${() => setSteps(steps.filter((_, j) => j !== i))} />`)}</ol>
      <button type="button" class="secondary" id="pb-add-step" onClick=${addStep}>Add step</button>
    </fieldset>
  </div>`;
}
