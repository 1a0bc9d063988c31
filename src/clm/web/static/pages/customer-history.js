// The customer list's filters on the stage and health history: who stood in a stage or health
// state at a past instant (as_of, from a point of the overview's charts) and who moved in a
// window (this week's movers). The names are the API's query parameters, so the URL and the
// request say the same thing (clm/lifecycle/history_filters.py). They are not conditions of
// the segment language, which reads where customers stand now: Save as segment is off while
// one is set.
import { label, minute } from "../lib/format.js";

export const HISTORY_PARAMS = ["as_of", "moved_since", "moved_until", "moved", "moved_to", "health_fell"];
const WENT = { up: "Moved up a stage", down: "Moved down a stage", new: "Entered their first stage" };

export function historyOf(params) {
  const found = {};
  for (const name of HISTORY_PARAMS) if (params.get(name)) found[name] = params.get(name);
  return found;
}

export const hasHistory = (view) => HISTORY_PARAMS.some((name) => view[name]);

const when = (iso) => `${minute(iso)} UTC`;

// Every history filter in words, with the parameters removing it clears.
export function historyChips(view) {
  const chips = [];
  if (view.as_of) chips.push({ clear: ["as_of"], text: `Stage and health as of ${when(view.as_of)}` });
  if (view.moved_since) {
    const span = `${when(view.moved_since)} – ${view.moved_until ? when(view.moved_until) : "now"}`;
    const spanParams = ["moved_since", "moved_until"];
    if (view.health_fell) chips.push({ clear: ["health_fell", ...spanParams], text: `Health score fell, ${span}` });
    if (view.moved) chips.push({ clear: ["moved", ...spanParams], text: `${WENT[view.moved] || view.moved}, ${span}` });
    if (view.moved_to) chips.push({ clear: ["moved_to", ...spanParams], text: `Moved into ${view.moved_to.split(",").map(label).join(" or ")}, ${span}` });
    if (!view.health_fell && !view.moved && !view.moved_to) chips.push({ clear: spanParams, text: `Changed stage, ${span}` });
  }
  return chips;
}
