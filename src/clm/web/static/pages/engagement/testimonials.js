// Testimonials waiting for approval: only approved ones reach the public feed.
import { html } from "../../lib/html.js";
import { api } from "../../lib/api.js";
import { minute } from "../../lib/format.js";
import { Queue } from "./queue.js";

export function Testimonials() {
  return html`<${Queue} action="testimonial.review" id="testimonial-queue" title="Testimonials waiting for approval" path="/engage/testimonials?status=pending"
    empty="No testimonial waits for approval."
    columns=${["from", "rating", "text", "consent", "received"]}
    row=${(t) => html`<td>${t.display_name}${t.customer_id ? html` <a href=${`/customers/${t.customer_id}`}>#${t.customer_id}</a>` : null}</td>
      <td>${t.rating ?? "–"}</td><td class="wrap">${t.text}</td><td>${t.consent ? "yes" : "no"}</td><td>${minute(t.created_at)}</td>`}
    decide=${(t, approve) => api(`/engage/testimonials/${t.id}/review`, { method: "POST", body: { decision: approve ? "approved" : "rejected" } })} />`;
}
