// A page whose content is still being built: says so instead of a blank screen.
import { html } from "../lib/html.js";

export function Placeholder({ title, hint }) {
  return html`<section class="page">
    <h1>${title}</h1>
    <p class="muted">${hint || "This page is not built yet."}</p>
  </section>`;
}
