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

// The error or loading line for a panel, else null (the caller renders its data).
export function status({ data, error, loading }, { empty } = {}) {
  if (error) {
    const text = error.status === 404 && empty ? empty : error.message;
    return html`<p class=${error.status === 404 && empty ? "muted" : "error"} role="alert">${text}</p>`;
  }
  if (loading && data === undefined) return html`<p class="muted" aria-busy="true">Loading…</p>`;
  return null;
}
