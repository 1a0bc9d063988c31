// A select whose choice counts once it is made: a pick from the open list (mouse, or Enter in
// it), Enter, or leaving the field. Arrow keys (and type-ahead letters) on the closed select
// only move the choice: Chromium fires "change" for each of them, and each would have been a
// request (a query and a history entry for a filter; a stored role, audited, for a member).
// Escape puts back the value in force. `commit(choice)` is called only for a new value.
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

const MOVES = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"]);
const typeAhead = (e) => e.key.length === 1 && e.key !== " " && !e.ctrlKey && !e.metaKey && !e.altKey;

export function CommitSelect({ value, commit, children, ...attributes }) {
  // The choice shown while it is not in force yet: a redraw meanwhile (a list reloaded) would
  // otherwise put the select back on the value in force under the keyboard.
  const [pending, setPending] = useState(null);
  const moving = useRef(false);
  // The choice last handed on, so leaving the field while it is on its way (the value in force
  // not yet updated) does not send it twice; Enter sends again (a retry after a refusal).
  const sent = useRef(null);
  useEffect(() => {
    setPending(null);
    sent.current = null;
  }, [value]);
  const made = (choice) => {
    if (choice === value || choice === sent.current) return;
    sent.current = choice;
    setPending(choice);
    commit(choice);
  };
  const onKeyDown = (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      sent.current = null;
      made(e.currentTarget.value);
    } else if (e.key === "Escape") {
      setPending(null);
      e.currentTarget.value = value;
    } else if (MOVES.has(e.key) || typeAhead(e)) {
      moving.current = true;
    }
  };
  const onChange = (e) => {
    if (moving.current) setPending(e.currentTarget.value);
    else made(e.currentTarget.value);
  };
  return html`<select ...${attributes} value=${pending ?? value} onKeyDown=${onKeyDown}
    onKeyUp=${() => { moving.current = false; }} onChange=${onChange}
    onBlur=${(e) => made(e.currentTarget.value)}>${children}</select>`;
}
