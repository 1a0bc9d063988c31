// The segment editor: its name, description and conditions as rows of field, operator and
// value, the members it would have checked as you type (POST /segments/preview answers a
// draft with mistakes as valid: false, so typing fills no console), and the API's own field
// errors shown at the row they name. A segment a playbook triggers on keeps its name. A
// condition's selects apply a choice once made (lib/select.js): arrow keys through the fields
// dropped the value at the first field of another kind, and each was a preview of a draft not meant.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { CommitSelect } from "../lib/select.js";
import { api } from "../lib/api.js";
import { useApi } from "../lib/hooks.js";
import { useChecked } from "../lib/debounce.js";
import { label, thousands } from "../lib/format.js";

const RFM = ["Champions", "Loyal", "Potential loyalists", "New", "Promising", "Need attention",
  "About to sleep", "At risk", "Can't lose them", "Hibernating", "Lost"];
const HEALTH = [["happy", "happy and stable"], ["at_risk", "happy but at risk"], ["unhappy", "unhappy"]];
export const FIELDS = [
  { attr: "stage", title: "Stage", kind: "text" },
  { attr: "health", title: "Health state", kind: "text" },
  { attr: "rfm", title: "RFM segment", kind: "text" },
  { attr: "health_score", title: "Health score (0–100)", kind: "number" },
  { attr: "p_alive", title: "P(alive) (0–1)", kind: "number" },
  { attr: "clv", title: "CLV (12 mo)", kind: "number" },
  { attr: "revenue", title: "Revenue", kind: "number" },
  { attr: "purchases", title: "Purchases", kind: "number" },
  { attr: "last_seen_days", title: "Days since last seen", kind: "number" },
  { attr: "last_seen_date", title: "Last seen on (day)", kind: "date" },
  { attr: "search", title: "Name, email or id", kind: "search" },
  { attr: "traits.", title: "Trait…", kind: "trait" },
];
const OPS = {
  text: ["eq", "ne", "in", "exists"],
  number: ["gte", "lte", "gt", "lt", "eq", "ne", "in", "exists"],
  date: ["gte", "lte", "gt", "lt", "eq", "ne", "exists"],
  search: ["contains"],
  trait: ["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"],
};
const OP_TEXT = { eq: "is", ne: "is not", in: "is one of", exists: "has a value", gt: ">", gte: "≥", lt: "<", lte: "≤", contains: "contains" };

const fieldOf = (attr) => FIELDS.find((f) => f.attr === attr) || FIELDS[FIELDS.length - 1];

// A typed value as the condition language takes it; text the server should refuse stays text,
// so the refusal names the row.
function parse(kind, text) {
  const t = text.trim();
  if (kind === "number") return t !== "" && Number.isFinite(Number(t)) ? Number(t) : t;
  if (kind === "trait") {
    if (t === "true" || t === "false") return t === "true";
    return t !== "" && Number.isFinite(Number(t)) ? Number(t) : t;
  }
  return t;
}

export function toCondition(row) {
  const field = fieldOf(row.attr);
  const attr = field.kind === "trait" ? `traits.${row.trait.trim()}` : row.attr;
  if (row.op === "exists") return { attr, op: "exists" };
  const value = row.op === "in" ? row.text.split(",").map((part) => parse(field.kind, part)).filter((v) => v !== "") : parse(field.kind, row.text);
  return { attr, op: row.op, value };
}

export function fromCondition(c) {
  const trait = c.attr.startsWith("traits.");
  const text = c.op === "exists" ? "" : Array.isArray(c.value) ? c.value.join(", ") : String(c.value ?? "");
  return { attr: trait ? "traits." : c.attr, trait: trait ? c.attr.slice(7) : "", op: c.op, text };
}

// The API's errors by condition index, and the rest ({0: "clv is compared with a number"}).
function byRow(errors) {
  const rows = {};
  const other = [];
  for (const e of errors || []) {
    const loc = e.loc.filter((part) => part !== "body");
    if (loc[0] === "conditions" && Number.isInteger(loc[1])) {
      const detail = loc.length > 2 ? `${loc.slice(2).join(" ")}: ` : "";
      rows[loc[1]] = [...(rows[loc[1]] || []), `${detail}${e.message}`];
    } else {
      other.push({ field: loc[0], text: loc.length ? `${loc.join(" ")}: ${e.message}` : e.message });
    }
  }
  return { rows, other };
}

function ValueInput({ row, index, field, stages, change, invalid }) {
  const id = `cond-${index}-value`;
  const common = { id, "aria-label": `Condition ${index + 1} value`, "aria-invalid": invalid ? "true" : undefined,
    "aria-describedby": invalid ? `cond-${index}-error` : undefined };
  if (row.op === "exists") return html`<span class="muted small cond-value">(no value)</span>`;
  const choices = row.attr === "stage" ? stages.map((s) => [s, label(s)]) : row.attr === "health" ? HEALTH : row.attr === "rfm" ? RFM.map((r) => [r, r]) : null;
  if (choices && row.op !== "in") {
    return html`<${CommitSelect} ...${common} class="cond-value" value=${row.text} commit=${(text) => change({ text })}>
      <option value="">choose…</option>
      ${choices.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
      ${row.text && !choices.some(([v]) => v === row.text) ? html`<option value=${row.text}>${row.text}</option>` : null}
    <//>`;
  }
  const type = field.kind === "date" && row.op !== "in" ? "date" : "text";
  const hint = row.op === "in" ? (choices ? choices.map(([v]) => v).join(", ") : "a, b, c") : field.kind === "number" ? "a number" : "";
  return html`<input ...${common} class="cond-value" type=${type} value=${row.text} placeholder=${hint}
    inputmode=${field.kind === "number" && row.op !== "in" ? "decimal" : undefined} onInput=${(e) => change({ text: e.currentTarget.value })} />`;
}

function ConditionRow({ row, index, stages, change, remove, problems }) {
  const field = fieldOf(row.attr);
  const ops = OPS[field.kind];
  const pick = (attr) => {
    const kind = fieldOf(attr).kind;
    change({ attr, op: OPS[kind].includes(row.op) ? row.op : OPS[kind][0], text: kind === field.kind ? row.text : "" });
  };
  return html`<li class="cond-row" data-index=${index}>
    <div class="cond-fields">
      <${CommitSelect} id=${`cond-${index}-attr`} aria-label=${`Condition ${index + 1} field`} value=${row.attr} commit=${pick}>
        ${FIELDS.map((f) => html`<option value=${f.attr}>${f.title}</option>`)}
      <//>
      ${field.kind === "trait" ? html`<input id=${`cond-${index}-trait`} class="cond-trait" aria-label=${`Condition ${index + 1} trait name`}
        placeholder="trait name, e.g. plan" value=${row.trait} onInput=${(e) => change({ trait: e.currentTarget.value })} />` : null}
      <${CommitSelect} id=${`cond-${index}-op`} aria-label=${`Condition ${index + 1} operator`} value=${row.op} commit=${(op) => change({ op })}>
        ${ops.map((op) => html`<option value=${op}>${OP_TEXT[op]}</option>`)}
      <//>
      <${ValueInput} row=${row} index=${index} field=${field} stages=${stages} change=${change} invalid=${Boolean(problems)} />
      <button type="button" class="secondary cond-remove" aria-label=${`Remove condition ${index + 1}`} onClick=${remove}>Remove</button>
    </div>
    ${problems ? html`<p class="error field-error" id=${`cond-${index}-error`} role="alert">${problems.join("; ")}</p>` : null}
  </li>`;
}

// Edit a saved segment in place; onDone(saved | null) when saved or cancelled.
export function SegmentEditor({ segment, onDone }) {
  const [rows, setRows] = useState(() => segment.conditions.map(fromCondition));
  const [name, setName] = useState(segment.name);
  const [description, setDescription] = useState(segment.description);
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const counts = useApi("/lifecycle/counts");
  const stages = Object.keys(counts.data?.stages || {});
  const conditions = rows.map(toCondition);
  const draft = JSON.stringify(conditions);
  const check = useChecked(draft, (text) => api("/segments/preview", { method: "POST", body: { conditions: JSON.parse(text) } }));
  const locked = segment.used_by.length > 0;
  // The server's word wins: the refused save's errors until the form changes, else the preview's.
  const previewErrors = check.state === "ok" && !check.value.valid ? check.value.errors : [];
  const stamp = JSON.stringify([name, description, conditions]);
  const refused = refusal && refusal.stamp === stamp ? refusal : null;
  const shown = byRow(refused ? refused.errors : previewErrors);
  const change = (index) => (patch) => setRows((old) => old.map((r, i) => (i === index ? { ...r, ...patch } : r)));
  const remove = (index) => () => setRows((old) => old.filter((_, i) => i !== index));
  const add = () => {
    setRows((old) => [...old, { attr: "stage", trait: "", op: "eq", text: "" }]);
    setTimeout(() => document.getElementById(`cond-${rows.length}-attr`)?.focus(), 0);
  };
  const save = async (event) => {
    event.preventDefault();
    setBusy(true);
    const body = { description, conditions };
    if (!locked && name.trim() !== segment.name) body.name = name;
    try {
      const saved = await api(`/segments/${segment.id}`, { method: "PATCH", body });
      onDone(saved);
    } catch (failure) {
      setRefusal({ stamp, message: failure.message, errors: failure.errors || [] });
      setBusy(false);
    }
  };
  const nameError = shown.other.find((o) => o.field === "name");
  let preview = html`<span class="muted">Checking…</span>`;
  if (check.state === "ok" && check.value.valid) {
    const size = check.value.size;
    preview = html`<strong>${thousands(size)}</strong> ${size === 1 ? "customer" : "customers"} would match now${" "}<span
      class="muted">(${thousands(segment.size)} with the saved conditions)</span>`;
  } else if (check.state === "ok") {
    preview = html`<span class="error">Fix the marked ${previewErrors.length === 1 ? "condition" : "conditions"} to see how many would match.</span>`;
  } else if (check.state === "error") {
    preview = html`<span class="error">${check.error.message}</span>`;
  }
  return html`<form class="panel segment-editor" id="segment-editor" onSubmit=${save} aria-labelledby="segment-editor-title">
    <h2 id="segment-editor-title">Edit segment</h2>
    <div class="toolbar">
      <label>Name <input id="edit-segment-name" maxlength="100" value=${name} disabled=${locked}
        aria-invalid=${nameError ? "true" : undefined} aria-describedby=${locked ? "rename-locked" : undefined}
        onInput=${(e) => setName(e.currentTarget.value)} /></label>
      <label class="grow">Description <input id="edit-segment-description" maxlength="2000" value=${description}
        onInput=${(e) => setDescription(e.currentTarget.value)} /></label>
    </div>
    ${locked ? html`<p class="note" id="rename-locked">Playbook ${segment.used_by.join(", ")} triggers on this segment by name, so it
      cannot be renamed (or deleted) while that playbook is active or paused. Its conditions can change.</p>` : null}
    ${nameError ? html`<p class="error field-error">${nameError.text}</p>` : null}
    <h3>Conditions <span class="muted small">(a customer is a member when every one holds)</span></h3>
    ${rows.length === 0 ? html`<p class="muted" id="no-conditions">No condition: every customer is a member.</p>` : null}
    <ol class="plain cond-rows" id="condition-rows">
      ${rows.map((row, index) => html`<${ConditionRow} key=${index} row=${row} index=${index} stages=${stages}
        change=${change(index)} remove=${remove(index)} problems=${shown.rows[index]} />`)}
    </ol>
    <div class="toolbar">
      <button type="button" class="secondary" id="add-condition" disabled=${rows.length >= 50} onClick=${add}>Add condition</button>
      <p class="preview" id="segment-preview" aria-live="polite">${preview}</p>
    </div>
    ${refused ? html`<div class="error" role="alert" id="segment-refused"><p>${refused.message}</p>
      ${shown.other.filter((o) => o.field !== "name").map((o) => html`<p>${o.text}</p>`)}</div>` : null}
    <div class="toolbar">
      <button type="submit" id="save-segment-edit" disabled=${busy}>Save changes</button>
      <button type="button" class="secondary" id="cancel-segment-edit" onClick=${() => onDone(null)}>Cancel</button>
    </div>
    <p class="muted small">Saving new conditions starts the size history again: it meant another set of customers.</p>
  </form>`;
}
