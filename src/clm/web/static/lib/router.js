// History-API routing: every page a URL of its own, deep links and the back button work.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set();

export function currentLocation() {
  return { path: location.pathname, params: new URLSearchParams(location.search) };
}

// The path on screen, to tell a new page from a new query on the same page.
let shownPath = location.pathname;

export function navigate(url, { replace = false } = {}) {
  if (url === location.pathname + location.search) return;
  const focused = document.activeElement;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const listener of listeners) listener();
  window.scrollTo(0, 0);
  settleFocus(focused);
}

// Where the keyboard goes once the new URL is drawn (after Preact's render, hence the timeout).
// A form redrawn for a new query (its fields refilled from it, e.g. the search box after Enter)
// would drop the keyboard's place to the page's start: the field of the same id gets it back.
// A new page reached from the navigation, or from a control that is gone with the old page,
// puts the keyboard (and a screen reader) on the new page's heading, not on the link left behind.
function settleFocus(before) {
  const newPage = location.pathname !== shownPath;
  shownPath = location.pathname;
  setTimeout(() => {
    const active = document.activeElement;
    const lost = !active || active === document.body || !active.isConnected;
    if (lost && before?.id && refocus(before.id)) return;
    const fromShell = Boolean(before?.closest?.("header.top"));
    if (newPage && (lost || fromShell)) focusHeading();
  });
}

function refocus(id) {
  const field = document.getElementById(id);
  if (!field) return false;
  field.focus({ preventScroll: true });
  // The caret after the text, where typing left it (number and date fields have no caret).
  if (["text", "search"].includes(field.type)) field.setSelectionRange(field.value.length, field.value.length);
  return document.activeElement === field;
}

function focusHeading() {
  const main = document.getElementById("main");
  if (!main) return;
  const heading = main.querySelector("h1");
  if (heading && !heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
  (heading || main).focus({ preventScroll: true });
}

addEventListener("popstate", () => {
  const focused = document.activeElement;
  for (const listener of listeners) listener();
  settleFocus(focused);
});

// Same-origin links to app pages move through history instead of reloading the page.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (link.target || link.hasAttribute("download") || link.dataset.external !== undefined) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !isAppPath(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

let appPaths = ["/"];
export function setAppPaths(paths) {
  appPaths = paths;
}
export function isAppPath(path) {
  return path === "/" || appPaths.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

export function useLocation() {
  const [where, setWhere] = useState(currentLocation());
  useEffect(() => {
    const update = () => setWhere(currentLocation());
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return where;
}

// Match "/customers/:id" against a path; returns the named parts or null.
export function match(pattern, path) {
  const want = pattern.split("/");
  const have = (path.length > 1 ? path.replace(/\/+$/, "") : path).split("/");
  if (want.length !== have.length) return null;
  const found = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) found[want[i].slice(1)] = decodeURIComponent(have[i]);
    else if (want[i] !== have[i]) return null;
  }
  return found;
}
