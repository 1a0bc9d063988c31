// Loading data for a page: one hook, so every page shows loading and errors the same way.
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { api } from "./api.js";

// { data, error, loading, reload } for GET /api/v1<path>; null path loads nothing.
export function useApi(path) {
  const [state, setState] = useState({ data: undefined, error: null, loading: Boolean(path) });
  const [round, setRound] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let live = true;
    setState((old) => ({ ...old, loading: true, error: null }));
    api(path).then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [path, round]);
  return { ...state, reload: () => setRound((n) => n + 1) };
}

// The API's message with what it says of each field ("Invalid range (since: must not be after
// until)"): "Invalid request" alone does not tell a person what to change.
export function errorText(error) {
  const fields = (error.errors || []).map((e) => {
    const where = (Array.isArray(e.loc) ? e.loc : [e.loc]).filter((p) => p && !["query", "path", "body"].includes(p));
    return where.length ? `${where.join(".")}: ${e.message}` : e.message;
  });
  return fields.length ? `${error.message} (${fields.join("; ")})` : error.message;
}

// The error or loading line for a panel, else null (the caller renders its data). A server
// that could not answer (stopped, restarting, failing) gets a "Try again" beside its message.
export function status({ data, error, loading, reload }, { empty } = {}) {
  if (error) {
    if (error.status === 404 && empty) return html`<p class="muted" role="alert">${empty}</p>`;
    const retry = reload && (error.status === 0 || error.status >= 500);
    return html`<p class="error" role="alert">${errorText(error)}${retry
      ? html`${" "}<button type="button" class="secondary retry" onClick=${reload}>Try again</button>` : null}</p>`;
  }
  if (loading && data === undefined) return html`<p class="muted" aria-busy="true">Loading…</p>`;
  return null;
}

// useApi for a stored reading (clm.analytics.kept): while its first reading runs the answer
// says `ready: false`, and this asks again every `every` ms until it lands. With `follow`, a
// reading shown while it is refreshed (`current: false`) is asked for again too, a few times,
// until a newer one arrives. `waiting`: no reading yet; `refreshing`: an older one is shown.
export function useReading(path, { every = 4000, follow = false, tries = 12 } = {}) {
  const answer = useApi(path);
  const [asked, setAsked] = useState({ path, n: 0 });
  const data = answer.data;
  const waiting = data !== undefined && data.ready === false;
  const refreshing = data !== undefined && data.ready !== false && data.current === false;
  const n = asked.path === path ? asked.n : 0;
  useEffect(() => {
    if (!waiting && !(follow && refreshing && n < tries)) return undefined;
    const timer = setTimeout(() => {
      setAsked({ path, n: waiting ? 0 : n + 1 });
      answer.reload();
    }, waiting ? every : every * 2);
    return () => clearTimeout(timer);
  }, [data]);
  return { ...answer, waiting, refreshing };
}
