// The caller's own role (GET /manage/whoami), so a screen can hide the buttons that role does not allow.
// The API refuses those calls anyway: this only spares the user a refusal.

import {get} from "./api.js";
import {onChange} from "./session.js";

const RANK = {viewer: 1, editor: 2, manager: 3, admin: 4};
let self = null;      // the answer without a resource, kept until the token changes

onChange(() => { self = null; });

// {principal, principals, admin, resource, role}; role is null without one (or without the resource).
export function whoami(resource) {
  if (resource) return get("manage/whoami", {params: {resource}}).then(answer => answer.data);
  if (!self) self = get("manage/whoami").then(answer => answer.data).catch(error => { self = null; throw error; });
  return self;
}

export function atLeast(role, needed) {
  return (RANK[role] || 0) >= RANK[needed];
}
