// What each role may do, as the API enforces it (README "Authentication");
// the dashboard hides what a role may not do.
import type { Role } from "./api";

export type Action =
  | "lead.write" // assign, status, activities, enrol
  | "coaching" // coaching panel and feedback
  | "lead.delete"
  | "agents.manage"
  | "sequences.write"
  | "models.train" // train and activate built-in models
  | "contact.privacy" // export / erase personal data
  | "events.read" // the event log, exports
  | "settings.write"
  | "broadcast";

const rules: Record<Action, Role[]> = {
  "lead.write": ["agent", "manager", "admin"],
  coaching: ["agent", "manager", "admin"],
  "lead.delete": ["manager", "admin"],
  "agents.manage": ["manager", "admin"],
  "sequences.write": ["manager", "admin"],
  "models.train": ["analyst", "admin"],
  "contact.privacy": ["admin"],
  "events.read": ["viewer", "analyst", "manager", "admin"],
  "settings.write": ["admin"],
  broadcast: ["admin"],
};

export function can(role: Role | undefined | null, action: Action): boolean {
  return !!role && rules[action].includes(role);
}

export const roleLabel: Record<Role, string> = {
  viewer: "Viewer",
  agent: "Agent",
  analyst: "Analyst",
  manager: "Manager",
  admin: "Admin",
};
