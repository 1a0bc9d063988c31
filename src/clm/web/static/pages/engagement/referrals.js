// The referral program: the funnel from codes issued to rewards, why referrals were turned
// down, and the queue of flagged referrals waiting for a person (with each fraud reason).
import { html } from "../../lib/html.js";
import { useApi, status } from "../../lib/hooks.js";
import { api } from "../../lib/api.js";
import { label, pct, thousands } from "../../lib/format.js";
import { Queue } from "./queue.js";

function Stats({ stats }) {
  const s = stats.data;
  const of = (n, d) => (d ? html`<span class="muted">${pct(n / d)}</span>` : null);
  return html`<div class="panel" id="referral-stats">
    <h2>Referral program</h2>
    ${status(stats)}
    ${s && html`<div class="cards">
        <div class="card"><span class="label">codes issued</span><span class="value">${thousands(s.codes)}</span></div>
        <div class="card"><span class="label">link clicks</span><span class="value">${thousands(s.clicks)}</span></div>
        <div class="card"><span class="label">referred customers</span><span class="value">${thousands(s.referred)}</span>${of(s.referred, s.clicks)}</div>
        <div class="card"><span class="label">converted</span><span class="value">${thousands(s.converted)}</span>${of(s.converted, s.referred)}</div>
        <div class="card"><span class="label">rewarded</span><span class="value">${thousands(s.rewarded)}</span><span class="muted">${thousands(s.points_rewarded)} points</span></div>
        <div class="card"><span class="label">waiting for review</span><span class="value">${thousands(s.in_review)}</span></div>
        <div class="card"><span class="label">rejected as fraud</span><span class=${`value ${s.fraud_rejected ? "error" : ""}`}>${thousands(s.fraud_rejected)}</span><span class="muted">of ${thousands(s.rejected)} rejected</span></div>
      </div>
      <p class="muted">Referred: clicked a link and became a known customer. Converted: made the qualifying signup or purchase. ${thousands(s.qualified)} converted referrals wait out the refund window before their reward.</p>
      ${Object.keys(s.rejected_reasons).length ? html`<h2>Why referrals were rejected</h2><div class="bars" id="rejected-reasons">
        ${Object.entries(s.rejected_reasons).map(([reason, n]) => html`<div class="bar"><span class="name">${label(reason)}</span>
          <span class="track"><span class="fill" style=${{ display: "block", width: `${(100 * n) / s.rejected}%` }}></span></span><span class="n">${thousands(n)}</span></div>`)}
      </div>` : null}`}
  </div>`;
}

export function Referrals() {
  const stats = useApi("/engage/referrals/stats");
  return html`<${Stats} stats=${stats} />
    <${Queue} action="referral.review" id="referral-queue" title="Referrals waiting for review" path="/engage/referrals?status=review"
      empty="No referral waits for review: the fraud checks flagged none."
      columns=${["code", "referrer", "referee", "why it was flagged"]}
      row=${(r) => html`<td><code>${r.code}</code></td>
        <td><a href=${`/customers/${r.referrer_id}`}>#${r.referrer_id}</a></td>
        <td><a href=${`/customers/${r.referee_id}`}>#${r.referee_id}</a></td>
        <td class="wrap">${r.checks.filter((c) => c.flagged).map((c) => html`<div><b>${label(c.check)}</b>: ${c.detail}</div>`)}</td>`}
      decide=${(r, approve) => api(`/engage/referrals/${r.id}/review`, { method: "POST", body: { approve } })}
      onDecided=${() => stats.reload()} />`;
}
