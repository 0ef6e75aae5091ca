// Unit tests of the TypeScript SDK against a fake server at the HTTP
// boundary, for what a real server cannot be made to do on demand: hostile
// event streams, a reset event, oversized or non-JSON answers. The behaviour
// shared with the other SDKs is held against a real server by
// sdk/conformance.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

import { PromptVault, PromptVaultError } from "../src/index.js";

// Only keeps a broken build from hanging; nothing here measures time.
const LIMIT = 30_000;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + LIMIT;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function doc(key: string, version: string, template = "Hi") {
  return {
    key, env: "live", version, number: Number(version.slice(1)) || null,
    commit: createHash("sha1").update(`${key}@${version}`).digest("hex"),
    sha256: createHash("sha256").update(`${key}@${version}`).digest("hex"),
    message: "m", author: "a", created_at: "2026-01-01T00:00:00Z", prompt: { template },
  };
}

class FakeServer {
  docs = new Map<string, { body: string; etag: string; status: number }>();
  streams: ServerResponse[] = [];
  lastEventIds: (string | undefined)[] = [];
  promptRequests: [string, string | undefined][] = [];
  url = "";
  private server = createServer((req, res) => this.handle(req, res));

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  set(key: string, version: string, template = "Hi"): void {
    const body = JSON.stringify(doc(key, version, template));
    this.docs.set(key, { body, etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 16)}"`, status: 200 });
  }

  setRaw(key: string, status: number, body: string): void {
    this.docs.set(key, { body, etag: "", status });
  }

  /** Writes to the newest event stream. */
  push(frame: string | Buffer): void {
    this.streams[this.streams.length - 1].write(frame);
  }

  pointer(key: string, seq: number): void {
    this.push(`id: ${seq}\nevent: pointer\ndata: {"key": "${key}", "env": "live"}\n\n`);
  }

  /** Ends the newest event stream. */
  cut(): void {
    this.streams[this.streams.length - 1].end();
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.end();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === "/v1/events") {
      this.lastEventIds.push(req.headers["last-event-id"] as string | undefined);
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": connected\n\n");
      this.streams.push(res);
      return;
    }
    const key = decodeURIComponent((req.url ?? "").replace(/^\/v1\/prompts\//, ""));
    const inm = req.headers["if-none-match"] as string | undefined;
    this.promptRequests.push([key, inm]);
    const d = this.docs.get(key) ?? { body: '{"error": {"code": "not_found", "message": "no such prompt"}}', etag: "", status: 404 };
    if (d.status === 200 && inm && inm === d.etag) {
      res.writeHead(304, { ETag: d.etag }).end();
      return;
    }
    res.writeHead(d.status, { "Content-Type": "application/json", ...(d.etag ? { ETag: d.etag } : {}) }).end(d.body);
  }
}

const opened: PromptVault[] = [];
const servers: FakeServer[] = [];
after(async () => {
  await Promise.all(opened.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
});

async function setup(opts: { events?: boolean; snapshotPath?: string } = {}): Promise<[FakeServer, PromptVault]> {
  const srv = await new FakeServer().start();
  servers.push(srv);
  srv.set("greet", "v1");
  srv.set("team/bye", "v1");
  const c = new PromptVault({ baseUrl: srv.url, apiKey: "pv_live_" + "x".repeat(32), backoffMs: [10, 100], ...opts });
  opened.push(c);
  return [srv, c];
}

async function version(c: PromptVault, key: string): Promise<string> {
  return (await c.get(key)).version;
}

test("a cached get makes no request", async () => {
  const [srv, c] = await setup();
  await waitFor("stream", () => c.connected); // so no first-connection revalidation follows
  assert.equal(await version(c, "greet"), "v1");
  for (let i = 0; i < 100; i++) assert.equal(await version(c, "greet"), "v1");
  assert.equal(srv.promptRequests.length, 1);
});

test("an event refetches with If-None-Match; a 304 keeps the copy", async () => {
  const [srv, c] = await setup();
  await waitFor("stream", () => c.connected); // so no first-connection revalidation follows
  const etag = (await c.get("greet")).etag;
  assert.ok(etag);
  srv.set("greet", "v2");
  srv.pointer("greet", 5);
  await waitFor("v2", async () => (await version(c, "greet")) === "v2");
  assert.deepEqual(srv.promptRequests[1], ["greet", etag]);
  srv.pointer("greet", 6);
  await waitFor("revalidation", () => srv.promptRequests.length === 3);
  assert.equal(await version(c, "greet"), "v2");
});

test("a reconnect resumes with Last-Event-ID", async () => {
  const [srv, c] = await setup();
  await c.get("greet");
  await waitFor("stream", () => c.connected);
  srv.pointer("greet", 41);
  srv.pointer("team/bye", 42);
  await waitFor("event 42 read", () => (c as unknown as { lastId: string }).lastId === "42");
  srv.cut();
  await waitFor("reconnect", () => srv.lastEventIds.length >= 2);
  assert.deepEqual(srv.lastEventIds.slice(0, 2), [undefined, "42"]);
});

test("event: reset revalidates every cached prompt", async () => {
  const [srv, c] = await setup();
  await c.get("greet");
  await c.get("team/bye");
  await waitFor("stream", () => c.connected);
  srv.set("greet", "v2");
  srv.set("team/bye", "v3");
  srv.push("event: reset\ndata: {}\n\n");
  await waitFor("both refetched", async () => (await version(c, "greet")) === "v2" && (await version(c, "team/bye")) === "v3");
});

test("a hostile stream is survived", async () => {
  const [srv, c] = await setup();
  await c.get("greet");
  await waitFor("stream", () => c.connected);
  srv.push("event: pointer\ndata: not json\n\n");
  srv.push("event: pointer\ndata: [1, 2]\n\n");
  srv.push('event: pointer\ndata: {"key": 5}\n\n');
  srv.push(Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0xfe, 0x0a, 0x0a]));
  srv.push("id\nevent\ndata\n\n");
  srv.push("event: pointer\r\ndata: null\r\n\r\n");
  // A line longer than 1 MiB ends the connection; the client redials.
  srv.push("data: " + "x".repeat(1 << 20) + "x");
  await waitFor("redial", () => srv.streams.length >= 2);
  assert.equal(await version(c, "greet"), "v1");
  srv.set("greet", "v2");
  srv.pointer("greet", 9);
  await waitFor("v2 after the redial", async () => (await version(c, "greet")) === "v2");
});

test("server errors are typed", async () => {
  const [srv, c] = await setup({ events: false });
  srv.setRaw("bad", 502, "<html>bad gateway</html>");
  await assert.rejects(c.get("bad"), (e: PromptVaultError) => e.status === 502 && e.code === "http_502" && e.detail.includes("bad gateway"));
  srv.setRaw("notjson", 200, "{");
  await assert.rejects(c.get("notjson"), (e: PromptVaultError) => e.status === 200 && e.code === "bad_response");
  srv.setRaw("big", 200, JSON.stringify(doc("big", "v1", "x".repeat(16 << 20))));
  await assert.rejects(c.get("big"), (e: PromptVaultError) => e.code === "bad_response");
  await assert.rejects(c.get("missing"), (e: PromptVaultError) => e.status === 404 && e.code === "not_found" && e instanceof Error);
});

test("bad input is refused before any request", async () => {
  assert.throws(() => new PromptVault({ baseUrl: "127.0.0.1:8080", apiKey: "k" }), TypeError);
  assert.throws(() => new PromptVault({ baseUrl: "ftp://host", apiKey: "k" }), TypeError);
  const [srv, c] = await setup({ events: false });
  for (const key of ["", "Greet", "../x", "a//b", "a/", "/a", "a b", "x".repeat(129), "é"]) {
    await assert.rejects(c.get(key), (e: PromptVaultError) => e.status === 0 && e.code === "invalid_key", key);
    await assert.rejects(c.render(key, {}), (e: PromptVaultError) => e.code === "invalid_key", key);
  }
  assert.equal(srv.promptRequests.length, 0);
});

test("an unreachable server is status 0 unavailable", async () => {
  const srv = await new FakeServer().start();
  const url = srv.url;
  await srv.stop();
  const c = new PromptVault({ baseUrl: url, apiKey: "k", backoffMs: [10, 50] });
  opened.push(c);
  await assert.rejects(c.get("greet"), (e: PromptVaultError) => e.status === 0 && e.code === "unavailable");
});

test("the snapshot file is written atomically and serves a cold start", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pv-snap-"));
  const path = join(dir, "prompts.json");
  const [, c] = await setup({ snapshotPath: path });
  await c.get("greet");
  await c.get("team/bye");
  await c.close();
  assert.deepEqual(readdirSync(dir), ["prompts.json"]);
  const sf = JSON.parse(readFileSync(path, "utf8"));
  assert.deepEqual(Object.keys(sf.prompts).sort(), ["greet", "team/bye"]);
  const cold = new PromptVault({ baseUrl: "http://127.0.0.1:9", apiKey: "k", snapshotPath: path, backoffMs: [10, 50] });
  opened.push(cold);
  const p = await cold.get("greet");
  assert.equal(p.version, "v1");
  assert.equal(p.etag, sf.etags.greet);
  assert.equal(p.traceAttributes()["gen_ai.prompt.name"], "greet");
});

test("close ends the event stream", async () => {
  const [, c] = await setup();
  await waitFor("stream", () => c.connected);
  await c.close();
  assert.equal(c.connected, false);
});
