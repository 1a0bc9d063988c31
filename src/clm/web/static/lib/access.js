// What the signed-in person (or pasted key) may do, as /api/v1/workspace reports it: the same
// permission set every API route checks, so a page never offers an action that would get 403.
// Set once by the shell when the workspace opens; pages ask can("marketing") etc.

let granted = new Set();
let who = "";

export function setAccess(workspace) {
  granted = new Set(workspace?.permissions || []);
  who = workspace?.role ? `the ${workspace.role.replace("_", " ")} role`
    : workspace?.key_kind ? `a ${workspace.key_kind} key` : "you";
}

// True when the caller holds ``permission`` (read, support, marketing, configure, members…).
export function can(permission) {
  return granted.has(permission);
}

// Why an action is missing, for pages that say so instead of silently hiding it.
export function lacks(permission) {
  return `Needs the ${permission} permission, which ${who} lacks.`;
}
