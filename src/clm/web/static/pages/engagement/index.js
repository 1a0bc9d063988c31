// Engagement: playbooks (list, editor, report, journeys in flight), surveys, the referral
// program, testimonials and the team's task inbox -- each view at a URL of its own.
import { html } from "../../lib/html.js";
import { Playbooks } from "./playbooks.js";
import { PlaybookEditor } from "./editor.js";
import { Surveys } from "./surveys.js";
import { Referrals } from "./referrals.js";
import { Testimonials } from "./testimonials.js";
import { Tasks } from "./tasks.js";
import { can, lacks } from "../../lib/access.js";

const TABS = [
  { name: "playbooks", title: "Playbooks", href: "/engagement" },
  { name: "surveys", title: "Surveys", href: "/engagement/surveys" },
  { name: "referrals", title: "Referrals", href: "/engagement/referrals" },
  { name: "testimonials", title: "Testimonials", href: "/engagement/testimonials" },
  { name: "tasks", title: "Task inbox", href: "/engagement/tasks" },
];

// Routes (routes.js): /engagement, /engagement/new, /engagement/:tab,
// /engagement/playbooks/:name, /engagement/playbooks/:name/edit, /engagement/surveys/:survey.
export function Engagement({ tab, name, survey, edit, params }) {
  const editing = tab === "new" || Boolean(edit);
  const current = name || editing ? "playbooks" : survey ? "surveys" : tab || "playbooks";
  const known = TABS.some((t) => t.name === current);
  return html`<section id="engagement" class="page">
    <h1>Engagement</h1>
    <div role="navigation" aria-label="Engagement views" class="tabs"><ul>
      ${TABS.map((t) => html`<li><a href=${t.href} aria-current=${t.name === current ? "page" : undefined}>${t.title}</a></li>`)}
    </ul></div>
    ${!known ? html`<p>No view <code>${tab}</code> here. <a href="/engagement">Playbooks</a></p>`
      : editing && !can("playbook.edit") ? html`<p class="muted denied" id="editor-denied">${lacks("playbook.edit")}</p>`
      : editing ? html`<${PlaybookEditor} key=${name || "new"} name=${name} />`
      : current === "surveys" ? html`<${Surveys} survey=${survey} params=${params} />`
      : current === "referrals" ? html`<${Referrals} />`
      : current === "testimonials" ? html`<${Testimonials} />`
      : current === "tasks" ? html`<${Tasks} params=${params} />`
      : html`<${Playbooks} name=${name} params=${params} />`}
  </section>`;
}
