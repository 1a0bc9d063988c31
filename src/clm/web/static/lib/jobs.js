// Background jobs: a slow read (a backtest, the first preview) answers with a job at once;
// the page polls it, showing its progress, until it is done (its result) or failed (its error).
import { api } from "./api.js";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The job's result once done; throws the job's error if it failed. `path` is where the job
// is read (e.g. "/health/jobs"); `onProgress(job)` is called with each state seen.
export async function finished(path, job, onProgress = () => {}) {
  let current = job;
  for (let wait = 400; ; wait = Math.min(2000, wait * 1.5)) {
    onProgress(current);
    if (current.status === "done") return current.result;
    if (current.status === "failed") throw new Error(current.error || "the job failed");
    await pause(wait);
    current = await api(`${path}/${current.id}`);
  }
}

// "42% — 1 of 2 cutoffs" for a job's progress line.
export function progressText(job) {
  if (!job) return "";
  const share = `${Math.round(100 * (job.progress || 0))}%`;
  if (job.status === "queued") return "waiting to start";
  return job.message ? `${share} — ${job.message}` : share;
}
