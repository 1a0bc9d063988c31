import { html } from "../lib/html.js";

export function Customers() {
  return html`<section class="page"><h1>Customers</h1></section>`;
}
