// The TypeScript SDK's conformance driver: one JSON request per line on
// stdin (open, get, render, connected, close), one JSON answer per line on
// stdout, as sdk/conformance's harness speaks to every SDK's driver. It runs
// the compiled SDK (sdk/typescript/dist), which the harness builds first.
import { createInterface } from "node:readline";
import { PromptVault, PromptVaultError } from "../../../typescript/dist/src/index.js";

const clients = new Map();

async function run(req) {
  if (req.op === "open") {
    const opts = { baseUrl: req.base_url, apiKey: req.api_key };
    if (req.snapshot_path) opts.snapshotPath = req.snapshot_path;
    if (req.events === false) opts.events = false;
    if (req.revalidate_ms) opts.revalidateMs = req.revalidate_ms;
    if (req.backoff_ms) opts.backoffMs = req.backoff_ms;
    clients.set(req.client, new PromptVault(opts));
    return {};
  }
  const c = clients.get(req.client);
  if (!c) throw new Error(`no client ${req.client}`);
  switch (req.op) {
    case "get": {
      const p = await c.get(req.key);
      return {
        key: p.key, env: p.env, version: p.version, number: p.number, commit: p.commit, sha256: p.sha256,
        template: p.prompt.template ?? "", attributes: p.traceAttributes(),
      };
    }
    case "render":
      return await c.render(req.key, req.variables ?? {});
    case "connected":
      return { connected: c.connected };
    case "close":
      clients.delete(req.client);
      await c.close();
      return {};
  }
  throw new Error(`unknown op ${req.op}`);
}

// Requests are answered one at a time, in order.
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  let ans;
  try {
    ans = { ok: true, result: await run(JSON.parse(line)) };
  } catch (e) {
    ans = e instanceof PromptVaultError
      ? { ok: false, error: { status: e.status, code: e.code, message: e.detail, errors: e.errors } }
      : { ok: false, error: { code: "driver", message: String(e?.stack ?? e) } };
  }
  process.stdout.write(JSON.stringify(ans) + "\n");
}
await Promise.all([...clients.values()].map((c) => c.close()));
