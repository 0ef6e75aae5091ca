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
    case "bench_get": {
      // n cached reads, and n reads of a Map (the least a cache can cost) as
      // the baseline.
      await c.get(req.key);
      let start = process.hrtime.bigint();
      for (let i = 0; i < req.n; i++) await c.get(req.key);
      const sdk = Number(process.hrtime.bigint() - start);
      const m = new Map([[req.key, {}]]);
      start = process.hrtime.bigint();
      for (let i = 0; i < req.n; i++) await m.get(req.key); // awaited, as get is
      const base = Number(process.hrtime.bigint() - start);
      return { sdk_ns: sdk / req.n, baseline_ns: base / req.n };
    }
    case "wait_version": {
      // What an application sees: get, until the new version is served.
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        try {
          if ((await c.get(req.key)).version === req.version) return {};
        } catch (e) {
          if (!(e instanceof PromptVaultError)) throw e;
        }
        await new Promise((r) => setImmediate(r));
      }
      throw new Error(`${req.key} never served ${req.version}`);
    }
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
