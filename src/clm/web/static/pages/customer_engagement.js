// The customer 360's engagement panels, from one call (GET /customers/{id}/engagement):
// surveys and comments with sentiment, referrals, points and coupons, messages sent and
// blocked with their reasons and the playbook that sent them, journeys, follow-up tasks.
import { html } from "../lib/html.js";
import { difference, day, label, minute, money, number, thousands } from "../lib/format.js";

const SENTIMENT = { positive: "happy", negative: "unhappy", neutral: "neutral" };
const SCALES = { nps: 10, csat: 5, ces: 7 };

function Surveys({ surveys }) {
  if (!surveys.length) return html`<p class="muted">No survey answers.</p>`;
  return html`<ul id="customer-surveys" class="plain">${surveys.map((s) => html`<li>
    <span class="muted">${day(s.at)}</span> <strong>${s.survey_type.toUpperCase()}${s.survey_id ? ` (${s.survey_id})` : ""}</strong>
    ${s.score !== null && html` ${number(s.score)}${SCALES[s.survey_type] ? ` of ${SCALES[s.survey_type]}` : ""}`}
    ${s.sentiment_label && html` <span class=${`pill ${SENTIMENT[s.sentiment_label]}`} title="VADER compound sentiment, -1 to 1">${s.sentiment_label} ${number(s.sentiment)}</span>`}
    ${s.comment && html`<br /><q>${s.comment}</q>`}
  </li>`)}</ul>`;
}

function Referral({ r, side }) {
  const other = side === "given" ? r.referee_id : r.referrer_id;
  const flagged = r.checks.filter((c) => c.flagged);
  return html`<li>${side === "given" ? "Referred " : "Referred by "}<a href=${`/customers/${other}`}>customer ${other}</a>${" with code "}<code>${r.code}</code>: <strong>${label(r.status)}</strong>${r.rewarded_at ? html` <span class="muted">rewarded ${day(r.rewarded_at)}</span>` : ""}
    ${flagged.length > 0 && html`<br /><span class="error">Flagged: ${flagged.map((c) => `${label(c.check)} (${c.detail})`).join("; ")}</span>`}
  </li>`;
}

function Advocacy({ e }) {
  return html`<div id="customer-referrals">
    <p>Referral code: ${e.referral_code ? html`<code>${e.referral_code}</code>` : html`<span class="muted">none issued</span>`}</p>
    ${e.referrals_given.length + (e.referred_by ? 1 : 0) > 0
      ? html`<ul class="plain">${e.referred_by && html`<${Referral} r=${e.referred_by} side="received" />`}${e.referrals_given.map((r) => html`<${Referral} r=${r} side="given" />`)}</ul>`
      : html`<p class="muted">No referrals given or received.</p>`}
    <h3>Points</h3>
    <p>Balance <strong id="points-balance">${thousands(e.points_balance)}</strong> points</p>
    ${e.points.length > 0 && html`<div class="table-wrap"><table id="points-ledger"><thead><tr><th>date</th><th>what</th><th class="num">points</th></tr></thead>
      <tbody>${e.points.slice(0, 10).map((p) => html`<tr><td>${day(p.created_at)}</td><td>${label(p.kind)}${p.memo ? `: ${p.memo}` : ""}</td>
        <td class="num">${difference(p.amount)}</td></tr>`)}</tbody></table></div>`}
    <h3>Coupons</h3>
    ${e.coupons.length ? html`<ul id="customer-coupons" class="plain">${e.coupons.map((c) => html`<li><code>${c.code}</code>${" "}${c.kind === "percent" ? `${number(c.value)}% off` : `${money(c.value)} off`}${c.min_order ? ` orders over ${money(c.min_order)}` : ""}: <strong>${c.status}</strong> <span class="muted">${thousands(c.redemptions)} of ${thousands(c.max_redemptions)} used${c.expires_at ? `, expires ${day(c.expires_at)}` : ""}</span></li>`)}</ul>`
      : html`<p class="muted">No coupons.</p>`}
  </div>`;
}

function sender(m) {
  if (m.playbook) return html`playbook <a href=${`/engagement/playbooks/${encodeURIComponent(m.playbook)}`}>${m.playbook}</a>${m.step ? `, step ${m.step}` : ""}`;
  if (m.survey) return `survey ${m.survey}`;
  return m.source || "sent by hand";
}

// A list, not a table: the panel is a third of the page wide, and each message has a reason
// and a sender to say.
function Messages({ e }) {
  return html`<div id="customer-messages">
    <p><strong>${thousands(e.messages_sent)}</strong> sent · <strong>${thousands(e.messages_blocked)}</strong> blocked</p>
    ${e.messages.length ? html`<ul class="plain">${e.messages.map((m) => html`<li>
      <span class="muted">${minute(m.sent_at || m.created_at)}</span> ${m.channel}, ${label(m.category)}:${" "}
      ${m.status === "blocked" ? html`<span class="pill unhappy">blocked</span> ${m.reason}` : html`<strong>${m.status}</strong>`}
      ${m.last_error && m.status !== "sent" ? html` <span class="muted">${m.last_error}</span>` : ""}
      <br /><span class="muted">from </span>${sender(m)}
    </li>`)}</ul>`
      : html`<p class="muted">No messages.</p>`}
  </div>`;
}

function Journeys({ journeys, tasks }) {
  return html`<div id="customer-journeys">
    ${journeys.length ? html`<ul class="plain">${journeys.map((j) => html`<li>
      <a href=${`/engagement/playbooks/${encodeURIComponent(j.playbook)}`}>${j.playbook}</a> v${j.version}: <strong>${j.state}</strong>${j.current_step ? ` at step ${j.current_step}` : ""}${j.arm === "control" ? html` <span class="pill neutral">holdout</span>` : ""}${" "}
      <span class="muted">since ${day(j.enrolled_at)}${j.wake_at && j.state === "waiting" ? `, next ${minute(j.wake_at)}` : ""}</span>
      ${j.history.length > 0 && html`<br /><span class="muted">${j.history.map((h) => `${day(h.at)} ${h.step} ${h.action}${h.detail ? ` (${h.detail})` : ""}`).join(" · ")}</span>`}
    </li>`)}</ul>` : html`<p class="muted">In no journey.</p>`}
    <h3>Follow-up tasks</h3>
    ${tasks.length ? html`<ul id="customer-tasks" class="plain">${tasks.map((t) => html`<li>${t.title} <span class="muted">${t.status}${t.owner ? `, ${t.owner}` : ""}, ${day(t.created_at)}</span></li>`)}</ul>`
      : html`<p class="muted">No tasks.</p>`}
  </div>`;
}

// The four panels, or one line saying why they are missing.
export function EngagementPanels({ engagement }) {
  const e = engagement;
  return html`
    <div class="panel"><h2>Surveys and comments</h2><${Surveys} surveys=${e.surveys} /></div>
    <div class="panel"><h2>Referrals, points and coupons</h2><${Advocacy} e=${e} /></div>
    <div class="panel"><h2>Messages</h2><${Messages} e=${e} /></div>
    <div class="panel"><h2>Journeys</h2><${Journeys} journeys=${e.journeys} tasks=${e.tasks} /></div>`;
}
