// Validate-as-you-type: call `check(text)` once typing pauses, and drop answers that a newer
// call overtook, so the panel always describes what is in the editor now.
import { useEffect, useRef, useState } from "preact/hooks";

export function useChecked(text, check, delay = 400) {
  const [result, setResult] = useState({ state: "idle" });
  const round = useRef(0);
  useEffect(() => {
    if (text === null || text === undefined) return undefined;
    const mine = ++round.current;
    setResult((old) => ({ ...old, state: "checking" }));
    const timer = setTimeout(() => {
      check(text).then(
        (value) => mine === round.current && setResult({ state: "ok", value }),
        (error) => mine === round.current && setResult({ state: "error", error }),
      );
    }, delay);
    return () => clearTimeout(timer);
  }, [text]);
  return result;
}

// The API's field errors as lines for people: "line 4: unknown key 'rules'" first by line.
export function problems(error) {
  if (!error) return [];
  const list = (error.errors || []).map((e) => {
    const where = Array.isArray(e.loc) ? e.loc.join(".") : e.loc || "";
    const line = /^line (\d+)/.exec(e.message || "");
    return { line: line ? Number(line[1]) : Infinity, text: line ? e.message : `${where}: ${e.message}` };
  });
  if (list.length === 0) list.push({ line: Infinity, text: error.message });
  return list.sort((a, b) => a.line - b.line).map((p) => p.text);
}
