// The app's pages: the navigation, the URL of each page and the component that draws it.
// A new page: add a row here (and its top-level path to APP_PAGES in clm/web/__init__.py).
import { html } from "./lib/html.js";
import { Overview } from "./pages/overview.js";
import { Customers } from "./pages/customers.js";
import { Customer } from "./pages/customer.js";
import { Reports } from "./pages/reports.js";
import { Segments } from "./pages/segments.js";
import { Engagement } from "./pages/engagement/index.js";
import { Settings } from "./pages/settings.js";

export const NAV = [
  { href: "/overview", label: "Overview" },
  { href: "/customers", label: "Customers" },
  { href: "/segments", label: "Segments" },
  { href: "/reports", label: "Reports" },
  { href: "/engagement", label: "Engagement" },
  { href: "/settings", label: "Settings" },
];

// First match wins; `:name` parts are passed to the page as props.
export const ROUTES = [
  { path: "/", page: Overview },
  { path: "/overview", page: Overview },
  { path: "/customers", page: Customers },
  { path: "/customers/:id", page: Customer },
  { path: "/segments", page: Segments },
  { path: "/segments/:id", page: Segments },
  { path: "/reports", page: Reports },
  { path: "/reports/:name", page: Reports },
  { path: "/engagement", page: Engagement },
  { path: "/engagement/playbooks/:name", page: Engagement },
  { path: "/engagement/playbooks/:name/edit", page: (props) => html`<${Engagement} ...${props} edit=${true} />` },
  { path: "/engagement/surveys/:survey", page: Engagement },
  { path: "/engagement/:tab", page: Engagement },
  { path: "/settings", page: Settings },
  { path: "/settings/:tab", page: Settings },
];
