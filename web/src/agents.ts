// The tenant's agents, fetched once per session and shared by every page.
import { useEffect, useState } from "preact/hooks";
import { listAll } from "./api";

export interface Agent {
  id: number;
  name: string;
  email?: string | null;
  phone?: string | null;
  active: boolean;
  capacity?: number | null;
  areas?: string[];
  languages?: string[];
}

let cache: Promise<Agent[]> | null = null;
let value: Agent[] = [];

export function loadAgents(force = false): Promise<Agent[]> {
  if (!cache || force) {
    cache = listAll<Agent>("/v1/agents", 2000).then(
      (a) => (value = a.sort((x, y) => x.name.localeCompare(y.name))),
      (e) => {
        cache = null;
        throw e;
      },
    );
  }
  return cache;
}

export function useAgents(): Agent[] {
  const [a, set] = useState(value);
  useEffect(() => {
    loadAgents().then(set, () => {});
  }, []);
  return a;
}

export function agentName(agents: Agent[], id: number | null | undefined): string {
  if (id == null) return "Unassigned";
  return agents.find((a) => a.id === id)?.name || "Agent #" + id;
}
