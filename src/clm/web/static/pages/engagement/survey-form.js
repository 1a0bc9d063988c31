// Creating a survey in the browser: its key, kind (NPS, CSAT, CES), question and channel. The
// API checks every field (a 422 names each one, shown at its field) and refuses a key in use
// (create_only: the CLI's apply replaces, this form never does). After saving, the survey's
// page shows the link its customers get.
import { useState } from "preact/hooks";
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { navigate } from "../../lib/router.js";

const KINDS = [
  ["nps", "NPS (0–10)", "How likely are you to recommend us to a friend or colleague?"],
  ["csat", "CSAT (1–5)", "How satisfied are you with us?"],
  ["ces", "CES (1–7)", "How easy was it to get what you needed?"],
];

function Problem({ field, problems }) {
  return problems[field] ? html`<span class="error field-error" id=${`survey-${field}-error`}>${problems[field]}</span>` : null;
}

// onCreated: the survey list reloads, so the new survey's page finds it.
export function NewSurvey({ onCreated }) {
  const [kind, setKind] = useState("nps");
  const [channel, setChannel] = useState("email");
  const [problems, setProblems] = useState({});
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const invalid = (field) => ({
    "aria-invalid": problems[field] ? "true" : undefined,
    "aria-describedby": problems[field] ? `survey-${field}-error` : `survey-${field}-hint`,
  });
  const create = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const body = { key: form.key.value.trim(), type: kind, channel, question: form.question.value.trim() || null };
    if (channel === "email") body.subject = form.subject.value;
    setBusy(true);
    try {
      const saved = await api("/engage/surveys?create_only=true", { method: "POST", body });
      onCreated();
      navigate(`/engagement/surveys/${encodeURIComponent(saved.key)}?created=1`);
    } catch (failure) {
      const found = {};
      for (const e of failure.errors || []) {
        const field = e.loc.filter((part) => part !== "body")[0];
        // The key's pattern, in words (the API quotes the regular expression).
        const text = field === "key" && e.type === "string_pattern_mismatch" ? "use lower-case letters, digits, - and _, starting with a letter or digit" : e.message;
        if (field && !found[field]) found[field] = text;
      }
      if (failure.status === 409) found.key = failure.message;
      setProblems(found);
      setRefusal(Object.keys(found).length ? null : failure.message);
      setBusy(false);
      const first = ["key", "type", "question", "channel", "subject"].find((f) => found[f]);
      if (first) document.getElementById(`survey-${first}`)?.focus();
    }
  };
  const prompt = KINDS.find(([value]) => value === kind)[2];
  return html`<form class="panel survey-form" id="new-survey" onSubmit=${create} noValidate aria-labelledby="new-survey-title">
    <h2 id="new-survey-title">New survey</h2>
    <div class="survey-fields">
      <label>Key <input id="survey-key" name="key" required maxlength="64" autocomplete="off" placeholder="e.g. nps-quarterly" autofocus ...${invalid("key")} />
        <span class="muted small" id="survey-key-hint">lower-case letters, digits, - and _; links and reports name it</span>
        <${Problem} field="key" problems=${problems} /></label>
      <label>Kind <select id="survey-type" name="type" value=${kind} onChange=${(e) => setKind(e.currentTarget.value)} ...${invalid("type")}>
        ${KINDS.map(([value, text]) => html`<option value=${value}>${text}</option>`)}</select>
        <span class="muted small" id="survey-type-hint">the scale and the score (NPS, CSAT %, CES mean)</span>
        <${Problem} field="type" problems=${problems} /></label>
      <label class="wide">Question <input id="survey-question" name="question" maxlength="1000" placeholder=${prompt} ...${invalid("question")} />
        <span class="muted small" id="survey-question-hint">empty: “${prompt}”</span>
        <${Problem} field="question" problems=${problems} /></label>
      <fieldset class="plainset" aria-describedby="survey-channel-hint">
        <legend>Channel</legend>
        ${["email", "sms"].map((c) => html`<label class="check"><input type="radio" name="channel" id=${`survey-channel-${c}`} value=${c}
          checked=${channel === c} onChange=${() => setChannel(c)} /> ${c === "sms" ? "SMS" : "email"}</label>`)}
        <span class="muted small" id="survey-channel-hint">how the question and its link reach each customer</span>
        <${Problem} field="channel" problems=${problems} />
      </fieldset>
      ${channel === "email" ? html`<label class="wide">Email subject <input id="survey-subject" name="subject" maxlength="200" defaultValue="A quick question from us" ...${invalid("subject")} />
        <span class="muted small" id="survey-subject-hint">1 to 200 characters</span>
        <${Problem} field="subject" problems=${problems} /></label>` : null}
    </div>
    ${refusal ? html`<p class="error" role="alert">${refusal}</p>` : null}
    <div class="toolbar">
      <button type="submit" id="create-survey" disabled=${busy}>Create survey</button>
      <button type="button" class="secondary" id="cancel-survey" onClick=${() => navigate("/engagement/surveys")}>Cancel</button>
    </div>
  </form>`;
}

// What a survey asks, how, and the link its customers get (each with a token of their own).
export function SurveyFacts({ survey, created }) {
  const d = survey.definition;
  const prompt = d.question || (KINDS.find(([value]) => value === survey.type) || [])[2] || "";
  return html`<div class="panel" id="survey-facts">
    ${created ? html`<p class="ok" role="status" id="survey-created" style="margin-top:0">Survey “${survey.key}” created.</p>` : null}
    <dl class="facts small">
      <dt>Question</dt><dd id="survey-question-shown">${prompt}</dd>
      <dt>Channel</dt><dd>${d.channel === "sms" ? "SMS" : `email · “${d.subject}”`}</dd>
      <dt>Link</dt><dd><code class="wrap-anywhere" id="survey-link">${survey.answer_link}?token=…</code>
        <br /><span class="muted">each customer asked gets it with a signed, single-use token of their own, valid ${d.token_days} days${survey.type !== "custom" && d.channel === "email" ? "; the email's score buttons add their score" : ""}</span></dd>
      <dt>Send it</dt><dd><code>clm survey send ${survey.key} -c ID</code> or <code>POST /api/v1/engage/surveys/${survey.key}/send</code></dd>
    </dl>
  </div>`;
}
