// The playbook editor: YAML checked as you type (the server answers valid or the problems,
// each with its line), the lines at fault marked beside the text, and saving stores a new
// version (journeys under way keep theirs).
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { navigate } from "../../lib/router.js";
import { problems, useChecked } from "../../lib/debounce.js";
import { PlaybookForm } from "./playbook-form.js";

const STARTER = `name: check-in
description: A personal note when a customer turns at risk, then a call if they stay quiet
trigger:
  type: health_changed
  to: at_risk
holdout: 0.1
goal:
  event: Order Completed
  within_days: 30
steps:
  - id: note
    type: send
    category: winback
    content:
      subject: How are we doing, {{ first_name }}?
      text: We noticed you have not been back for a while. Anything we can help with?
  - id: wait-for-order
    type: wait_until
    event: Order Completed
    days: 7
    on_timeout: call
  - id: done
    type: exit
    reason: ordered again
  - id: call
    type: task
    title: Call the customer
`;

// "line 14: unknown key ..." -> { line: 14, text }
function located(list) {
  return list.map((text) => {
    const found = /^line (\d+):\s*(.*)$/s.exec(text);
    return found ? { line: Number(found[1]), text: found[2] } : { line: null, text };
  });
}

function caretTo(textarea, line) {
  const lines = textarea.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  textarea.focus();
  textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
  const height = textarea.scrollHeight / Math.max(lines.length, 1);
  textarea.scrollTop = Math.max(0, (line - 4) * height);
}

export function PlaybookEditor({ name }) {
  const source = useApi(name ? `/engage/playbooks/${encodeURIComponent(name)}/source` : null);
  const [text, setText] = useState(name ? null : STARTER);
  const [saved, setSaved] = useState("");
  const area = useRef(null);
  const gutter = useRef(null);
  const [mode, setMode] = useState("yaml");
  const [draft, setDraft] = useState(null);
  const written = useRef(0);
  const segments = useApi("/segments");
  useEffect(() => {
    if (source.data && text === null) setText(source.data.yaml);
  }, [source.data]);
  const check = useChecked(text, (yaml) => api("/engage/playbooks/check", { method: "POST", body: { yaml } }));
  // The check answers 200 with valid: false and the problems (no 4xx in the console per key).
  const answer = check.state === "ok" ? check.value : null;
  const found = located(check.state === "error" ? problems(check.error)
    : answer && !answer.valid ? problems({ errors: answer.errors }) : []);
  const valid = Boolean(answer && answer.valid) && check.state !== "checking";
  const bad = new Set(found.map((p) => p.line).filter(Boolean));
  const lineCount = (text || "").split("\n").length;

  // The form edits the draft the check read from the text; each change is written back into
  // that text by the server, comments and layout kept (answers a newer change overtook are
  // dropped).
  const toForm = () => {
    if (!answer || !answer.draft) return;
    setDraft(answer.draft);
    setMode("form");
  };
  const formChanged = (next) => {
    setDraft(next);
    const mine = ++written.current;
    api("/engage/playbooks/yaml", { method: "POST", body: { draft: next, yaml: text } }).then(
      (answer) => mine === written.current && setText(answer.yaml),
      (error) => mine === written.current && setSaved(error.message),
    );
  };
  const toLine = (line) => {
    if (mode === "yaml" && area.current) return caretTo(area.current, line); // at once
    setMode("yaml"); // the text area shows on the next render
    setTimeout(() => area.current && caretTo(area.current, line), 0);
  };
  const canForm = Boolean(answer && answer.draft) && check.state !== "checking";

  async function save(event) {
    event.preventDefault();
    setSaved("");
    try {
      const stored = await api("/engage/playbooks/source", { method: "POST", body: { yaml: text } });
      navigate(`/engagement/playbooks/${encodeURIComponent(stored.name)}`);
    } catch (error) {
      setSaved(problems(error).join("; "));
    }
  }

  const title = name ? html`Edit ${name} ${source.data ? html`<span class="muted">v${source.data.version}, saving makes v${source.data.version + 1}</span>` : null}` : "New playbook";
  return html`<form class="panels playbook-editor" onSubmit=${save}>
    <div class="panel editor">
      <h2>${title}</h2>
      ${name ? status(source) : null}
      ${text !== null && html`<div class="toolbar edit-as" role="group" aria-label="Edit as">
        <button type="button" id="edit-as-yaml" class=${mode === "yaml" ? "" : "secondary"} aria-pressed=${mode === "yaml" ? "true" : "false"}
          onClick=${() => setMode("yaml")}>YAML</button>
        <button type="button" id="edit-as-form" class=${mode === "form" ? "" : "secondary"} aria-pressed=${mode === "form" ? "true" : "false"}
          disabled=${!canForm && mode !== "form"} title=${canForm ? "Edit with fields" : "The form opens once the YAML reads as a mapping"}
          onClick=${() => { if (mode !== "form") toForm(); }}>Form</button>
      </div>
      ${mode === "form" && draft ? html`<${PlaybookForm} draft=${draft} onChange=${formChanged} segments=${(segments.data || []).map((x) => x.name)} />` : null}
      <div class="code" hidden=${mode === "form"}>
        <div class="gutter" ref=${gutter} aria-hidden="true">${Array.from({ length: lineCount }, (_, i) => html`<div class=${bad.has(i + 1) ? "bad" : ""}>${i + 1}</div>`)}</div>
        <textarea id="playbook-yaml" aria-label="Playbook YAML" aria-describedby="playbook-check" spellcheck="false" wrap="off"
          ref=${area} value=${text} onInput=${(e) => setText(e.currentTarget.value)}
          onScroll=${(e) => { if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop; }}></textarea>
      </div>
      <div class="toolbar">
        <button id="save-playbook" type="submit" disabled=${!valid}>${name ? "Save as new version" : "Save playbook"}</button>
        <a class="button secondary" href=${name ? `/engagement/playbooks/${encodeURIComponent(name)}` : "/engagement"}>Cancel</a>
        <span id="check-state" class="muted" role="status">${check.state === "checking" ? "Checking…"
          : valid ? html`<span class="ok">Valid: ${answer.name}, ${answer.steps} step${answer.steps === 1 ? "" : "s"}.</span>`
          : found.length ? `${found.length} problem${found.length > 1 ? "s" : ""}.` : ""}</span>
      </div>
      <p id="save-status" class="error" role="alert">${saved}</p>`}
    </div>
    <div class="panel" id="playbook-check">
      <h2>Problems</h2>
      ${found.length ? html`<ul id="playbook-errors" class="problems plain">${found.map((p) => html`<li>
          ${p.line ? html`<button type="button" class="link" onClick=${() => toLine(p.line)}>line ${p.line}</button>: ` : null}${p.text}</li>`)}</ul>`
        : html`<p class="muted">${valid ? "None: this playbook can be saved." : "Checked as you type."}</p>`}
      <h2 style="margin-top:1rem">Writing a playbook</h2>
      <dl class="facts small">
        <dt>trigger</dt><dd><code>stage_changed</code> (to, from), <code>health_changed</code> (to), <code>event</code> (event, where), <code>date</code> (trait, offset_days), <code>schedule</code> (every_days), <code>segment_entered</code> (conditions)</dd>
        <dt>steps</dt><dd><code>send</code> (content: subject, text), <code>wait</code> (days, hours), <code>wait_until</code> (event, days, on_timeout), <code>branch</code> (conditions, then, else), <code>split</code> (variants, goto), <code>task</code> (title, owner), <code>update</code> (traits), <code>exit</code></dd>
        <dt>goal</dt><dd><code>stage</code> or <code>event</code> within <code>within_days</code>; with a <code>holdout</code> (0–0.5) the report shows the uplift</dd>
      </dl>
    </div>
  </form>`;
}
