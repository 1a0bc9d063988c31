// CLM's web app: the shell (sign-in, navigation, routing) around the pages in routes.js.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html } from "./lib/html.js";
import { api, onSignedOut, useKey, usingKey } from "./lib/api.js";
import { setAccess } from "./lib/access.js";
import { match, setAppPaths, useLocation } from "./lib/router.js";
import { NAV, ROUTES } from "./routes.js";

setAppPaths(NAV.map((item) => item.href));

function SignIn({ onSignedIn, notice }) {
  const [signinError, setSigninError] = useState("");
  const [keyError, setKeyError] = useState("");

  async function signIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    useKey(null);
    try {
      await api("/auth/login", {
        method: "POST",
        body: { email: form.email.value.trim(), password: form.password.value },
      });
      form.password.value = "";
      onSignedIn(await api("/workspace"));
    } catch (error) {
      setSigninError(error.status === 401 ? "Wrong email or password."
        : error.status === 429 ? "Too many failed attempts; try again later."
        : error.status === 403 ? "Your role does not open this workspace." : error.message);
    }
  }

  async function openWithKey(event) {
    event.preventDefault();
    useKey(event.currentTarget.key.value.trim());
    try {
      onSignedIn(await api("/workspace"));
    } catch (error) {
      useKey(null);
      setKeyError(error.status === 401 || error.status === 403
        ? "That key does not open a workspace." : error.message);
    }
  }

  return html`<main id="login" class="signin">
    <h1>Sign in to CLM</h1>
    ${notice ? html`<p id="signed-out-notice" class="note" role="status">${notice}</p>` : null}
    <form id="signin-form" onSubmit=${signIn}>
      <label>Email <input id="email" name="email" type="email" autocomplete="username" placeholder="you@example.com" required /></label>
      <label>Password <input id="password" name="password" type="password" autocomplete="current-password" required /></label>
      <button type="submit">Sign in</button>
    </form>
    <p id="signin-error" class="error" role="alert">${signinError}</p>
    <p class="muted"><a href="/reset.html" data-external>Forgot your password?</a></p>
    <h2>Or open with an API key</h2>
    <p class="muted">For operators: a workspace read or manage key (<code>clm_rk_…</code>,
      <code>clm_mk_…</code>, <code>clm_sk_…</code>). It is kept only while this tab is open.</p>
    <form id="login-form" onSubmit=${openWithKey}>
      <label>Key <input id="key" name="key" type="password" autocomplete="off" placeholder="clm_rk_…" required /></label>
      <button type="submit">Open</button>
    </form>
    <p id="login-error" class="error" role="alert">${keyError}</p>
  </main>`;
}

function Shell({ workspace, onSignOut }) {
  const { path, params } = useLocation();
  let page = null;
  for (const route of ROUTES) {
    const found = match(route.path, path);
    if (found) {
      page = html`<${route.page} ...${found} params=${params} path=${path} />`;
      break;
    }
  }
  useEffect(() => {
    const item = NAV.find((n) => path === n.href || path.startsWith(`${n.href}/`));
    document.title = item ? `${item.label} · CLM` : "CLM";
  }, [path]);
  const current = (href) => path === href || path.startsWith(`${href}/`) || (path === "/" && href === "/overview");
  return html`
    <a class="skip" href="#main" data-external>Skip to content</a>
    <header class="top">
      <a class="brand" href="/overview">CLM</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.map((item) => html`<li><a href=${item.href} aria-current=${current(item.href) ? "page" : undefined}>${item.label}</a></li>`)}
        </ul>
      </nav>
      <span id="workspace-name" class="muted">${workspace.name} (${workspace.slug})</span>
      <button id="sign-out" type="button" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main" tabindex="-1">
      ${page || html`<section class="page"><h1>Not found</h1><p>No page at <code>${path}</code>. <a href="/overview">Overview</a></p></section>`}
    </main>`;
}

function App() {
  // undefined: still asking; null: signed out; else the workspace the caller opens.
  const [workspace, setWorkspace] = useState(undefined);
  // Why the sign-in form is back while a page was open (a session that ended, a revoked key).
  const [notice, setNotice] = useState("");
  // Set as the page renders, before any of its requests can answer. Only while a workspace is
  // open: the sign-in form's own 401s are its wrong passwords.
  onSignedOut(workspace ? () => {
    useKey(null);
    setNotice("Your sign-in has ended: the session expired or was signed out elsewhere, or the key was revoked. Sign in again to go on where you were.");
    setWorkspace(null);
  } : null);
  useEffect(() => {
    // A key for this tab, else a live session cookie, else the sign-in form. Without either
    // there is nothing to ask (and no 401 in the console).
    const session = document.cookie.split("; ").some((c) => c.startsWith("clm_csrf="));
    if (!usingKey() && !session) {
      setWorkspace(null);
      return;
    }
    api("/workspace").then(setWorkspace, () => {
      useKey(null);
      setWorkspace(null);
    });
  }, []);

  async function signOut() {
    onSignedOut(null); // leaving on purpose: no "your sign-in has ended" on the way out
    if (usingKey()) useKey(null);
    else await api("/auth/logout", { method: "POST" }).catch(() => {});
    setWorkspace(null);
  }

  if (workspace === undefined) return html`<p class="loading muted">Loading…</p>`;
  if (workspace === null) {
    return html`<${SignIn} notice=${notice} onSignedIn=${(opened) => { setNotice(""); setWorkspace(opened); }} />`;
  }
  setAccess(workspace);
  return html`<${Shell} workspace=${workspace} onSignOut=${signOut} />`;
}

render(html`<${App} />`, document.getElementById("app"));
