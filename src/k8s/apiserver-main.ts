// `trellis lab apiserver`: the fake API server as a process of its own, for the lab (it runs in a
// network namespace; agents in others reach it over HTTP with bearer tokens).

import * as fs from "node:fs";
import { FakeApiServer, type ApiCall, type ApiUser } from "./apiserver.js";

export interface ApiServerCommandOptions { listen: string; usersFile: string; callsFile?: string }

/** `127.0.0.1:6443`, `[::1]:6443`, `:6443` (all addresses) → host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = listen.match(/^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(listen)}: expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Reads and checks a users file: a JSON array of {token, name, rules?}. */
export function readUsers(file: string): ApiUser[] {
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`cannot read users file ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(data)) throw new Error(`users file ${file}: expected a JSON array of {token, name, rules?}`);
  data.forEach((u: unknown, i) => {
    const x = u as Partial<ApiUser> | null;
    if (!x || typeof x.token !== "string" || !x.token || typeof x.name !== "string" || (x.rules !== undefined && !Array.isArray(x.rules))) {
      throw new Error(`users file ${file}: entry ${i} needs a non-empty "token", a "name" and optionally "rules" (a list of PolicyRules)`);
    }
  });
  return data as ApiUser[];
}

/** Serves until `signal` aborts; `ready` gets the one line announcing the address. */
export async function serveApiServer(opts: ApiServerCommandOptions, signal: AbortSignal, ready: (line: string) => void): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const users = readUsers(opts.usersFile);
  const callsFile = opts.callsFile;
  const onCall = callsFile ? (c: ApiCall): void => fs.appendFileSync(callsFile, JSON.stringify(c) + "\n") : undefined;
  const server = await FakeApiServer.start({ host, port, users, ...(onCall ? { onCall } : {}) });
  ready(`apiserver listening on ${server.url}\n`);
  if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  await server.close();
}

export async function runApiServerCommand(opts: { listen: string; usersFile: string; callsFile?: string }): Promise<void> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  try {
    await serveApiServer(opts, ac.signal, (line) => process.stdout.write(line));
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  }
}
