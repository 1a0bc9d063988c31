// What the signed-in person (or pasted key) may do. Each action a page offers names the API
// route it calls (ACTIONS); which permission that route needs is not written here but read
// from the server (/api/v1/workspace: `route_permissions`, derived from each route's own
// dependencies), and the caller's permissions come from the same answer. So a page never
// offers an action that would get 403, and never hides one the API allows.
// tests/web/test_access_map.py fails when an action names a route that does not exist or
// needs no permission, or a page asks about an action not listed here.
// Set once by the shell when the workspace opens; pages ask can("playbook.pause") etc.

export const ACTIONS = {
  "note.add": "POST /api/v1/customers/{customer_id}/notes",
  "segment.save": "POST /api/v1/segments",
  "segment.edit": "PATCH /api/v1/segments/{segment_id}",
  "segment.delete": "DELETE /api/v1/segments/{segment_id}",
  "playbook.edit": "POST /api/v1/engage/playbooks/source",
  "playbook.pause": "POST /api/v1/engage/playbooks/{name}/pause",
  "playbook.resume": "POST /api/v1/engage/playbooks/{name}/resume",
  "survey.create": "POST /api/v1/engage/surveys",
  "task.update": "PATCH /api/v1/engage/tasks/{task_id}",
  "referral.review": "POST /api/v1/engage/referrals/{referral_id}/review",
  "testimonial.review": "POST /api/v1/engage/testimonials/{testimonial_id}/review",
  "stage-model.save": "PUT /api/v1/lifecycle/model",
  "scorecard.save": "PUT /api/v1/health/scorecard",
  "scorecard.backtest": "POST /api/v1/health/backtest",
  "policy.save": "PUT /api/v1/engage/policy",
  "channel.edit": "PATCH /api/v1/engage/channels/{channel}",
  "members.manage": "PUT /api/v1/members",
  "keys.list": "GET /api/v1/keys",
};

let granted = new Set();
let needs = {};
let who = "";

export function setAccess(workspace) {
  granted = new Set(workspace?.permissions || []);
  needs = workspace?.route_permissions || {};
  who = workspace?.role ? `the ${workspace.role.replace("_", " ")} role`
    : workspace?.key_kind ? `a ${workspace.key_kind} key` : "you";
}

// The permission ``action``'s route needs (undefined before the workspace opens).
function permissionOf(action) {
  if (!(action in ACTIONS)) throw new Error(`unknown action ${action}`);
  return needs[ACTIONS[action]];
}

// True when the caller may take ``action`` (a key of ACTIONS).
export function can(action) {
  const permission = permissionOf(action);
  return permission !== undefined && granted.has(permission);
}

// Why an action is missing, for pages that say so instead of silently hiding it.
export function lacks(action) {
  return `Needs the ${permissionOf(action) || "right"} permission, which ${who} lacks.`;
}
