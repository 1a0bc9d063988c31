// Settings: the stage model, the health scorecard and its backtest, the guardrails and
// channels, members and API keys -- one tab each, each a URL (/settings/<tab>).
import { html } from "../lib/html.js";
import { StageModel } from "./settings/stage-model.js";
import { Health } from "./settings/health.js";
import { Guardrails } from "./settings/guardrails.js";
import { Members } from "./settings/members.js";
import { Keys } from "./settings/keys.js";
import { can, lacks } from "../lib/access.js";

const TABS = [
  { name: "stage-model", title: "Stage model", page: StageModel },
  { name: "health", title: "Health scorecard", page: Health },
  { name: "guardrails", title: "Guardrails & channels", page: Guardrails },
  { name: "members", title: "Members", page: Members },
  { name: "keys", title: "API keys", page: Keys, action: "keys.list" },
];

export function Settings({ tab }) {
  const current = TABS.find((t) => t.name === tab) || TABS[0];
  return html`<section id="settings" class="page">
    <h1>Settings</h1>
    <div role="navigation" aria-label="Settings views" class="tabs"><ul>
      ${TABS.map((t) => html`<li><a href=${`/settings/${t.name}`} aria-current=${t === current ? "page" : undefined}>${t.title}</a></li>`)}
    </ul></div>
    ${!current.action || can(current.action) ? html`<${current.page} />`
      : html`<p class="muted denied" id="settings-denied">${lacks(current.action)}</p>`}
  </section>`;
}
