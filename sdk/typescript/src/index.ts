/**
 * TypeScript SDK for a promptvault server (Node 18+, no runtime
 * dependencies).
 *
 * `get` answers from memory, kept fresh by the server's event stream
 * (`GET /v1/events`, read from the fetch response body): a promote or
 * rollback reaches the cache within milliseconds, with no TTL. While the
 * stream is down cached prompts are still served at once and revalidated in
 * the background; when the server fails the last good copy is served; with
 * `snapshotPath` the cache survives restarts, so an application can start
 * while the server is down. `render` renders on the server.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * Trace attribute names. The first two are OpenTelemetry's GenAI semantic
 * conventions (`gen_ai.prompt.name` and `gen_ai.prompt.version`,
 * conditionally required on an inference span that used a named prompt
 * template); the conventions have no name for the commit or the content
 * hash, so those take the vendor namespace OpenTelemetry asks for,
 * `promptvault.*`. The Go and Python SDKs use the same names.
 */
export const ATTR_PROMPT_NAME = "gen_ai.prompt.name";
export const ATTR_PROMPT_VERSION = "gen_ai.prompt.version";
export const ATTR_PROMPT_COMMIT = "promptvault.prompt.commit";
export const ATTR_PROMPT_SHA256 = "promptvault.prompt.sha256";
export const ATTR_PROMPT_ENV = "promptvault.prompt.env";

/** One chat message. */
export interface Message {
  role: string;
  content: string;
}

/** The prompt file's content (SPEC §1); absent fields are unset. */
export interface PromptBody {
  description?: string;
  model?: string;
  fallback_model?: string;
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  system?: string;
  template?: string;
  messages?: Message[];
  input_schema?: Record<string, unknown>;
  output_schema?: Record<string, unknown>;
  cache_timeout?: number;
  config?: Record<string, unknown>;
}

/** The server's answer to `GET /v1/prompts/{key}`. */
export interface PromptDocument {
  key: string;
  /** `live` or `staging`: the pointer that served it. */
  env: string;
  /** `v7`, or a draft's label on staging. */
  version: string;
  /** null for drafts. */
  number: number | null;
  commit: string;
  sha256: string;
  message: string;
  author: string;
  created_at: string;
  prompt: PromptBody;
}

/** A resolved prompt. */
export interface Prompt extends PromptDocument {
  /** The server's entity tag for this document. */
  readonly etag: string;
  /**
   * The attributes to put on the LLM span that used this prompt, so a
   * generation can be traced to the exact prompt file:
   * `span.setAttributes(prompt.traceAttributes())`.
   */
  traceAttributes(): Record<string, string>;
}

/** The server's answer to `POST /v1/prompts/{key}/render`. */
export interface Rendered {
  key: string;
  env: string;
  version: string;
  messages: Message[];
  model: string | null;
  fallback_model: string | null;
  temperature: number | null;
  max_tokens: number | null;
  top_p: number | null;
  output_schema: Record<string, unknown> | null;
  cache_timeout: number | null;
  config: Record<string, unknown> | null;
}

/** One problem with a render's variables, at a JSON pointer into them. */
export interface VariableError {
  path: string;
  message: string;
}

/**
 * An error answer from the server, or (status 0) one the client raised
 * itself: code `unavailable` when the server could not be reached or its
 * answer not read, `invalid_key` for a key that breaks SPEC §1's pattern
 * (checked before any request), `bad_response` for an answer that is not
 * the documented JSON.
 */
export class PromptVaultError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: VariableError[];
  /** The server's (or the client's) message, without the prefix. */
  readonly detail: string;

  constructor(status: number, code: string, message: string, errors: VariableError[] = [], options?: { cause?: unknown }) {
    super(status ? `promptvault: ${status} ${code}: ${message}` : `promptvault: ${code}: ${message}`, options);
    this.name = "PromptVaultError";
    this.status = status;
    this.code = code;
    this.detail = message;
    this.errors = errors;
  }
}

/** Options for {@link PromptVault}. */
export interface Options {
  /** Such as `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A `pv_live_` or `pv_test_` key. */
  apiKey: string;
  /** Keep a copy of the cache here, written atomically after each change and read at construction. */
  snapshotPath?: string;
  /** Follow the event stream (default true); without it cached prompts are revalidated on `get` every `revalidateMs`. */
  events?: boolean;
  /** Request timeout for reads and renders (default 10 000 ms; the stream has none). */
  timeoutMs?: number;
  /** Reconnect delays, min and max (default 100 ms doubling to 30 s, with jitter). */
  backoffMs?: [number, number];
  /** How often `get` revalidates a cached prompt in the background while the stream is down (default 1000 ms). */
  revalidateMs?: number;
  /** Called when a cached prompt is replaced by a newer document. */
  onUpdate?: (p: Prompt) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

const KEY = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;
const MAX_KEY_LEN = 128;
const MAX_DOC = 16 << 20;
const MAX_RENDER = 64 << 20;
const MAX_LINE = 1 << 20;
// The server sends a comment every 15 s; a stream silent for three of them is
// a dead connection (a peer that vanished without a FIN) and is redialled.
const STREAM_IDLE_MS = 45_000;

function checkKey(key: string): void {
  if (typeof key !== "string" || key.length > MAX_KEY_LEN || !KEY.test(key)) {
    throw new PromptVaultError(0, "invalid_key", `invalid prompt key ${JSON.stringify(key)}: want lower-case path segments such as support/summarize`);
  }
}

function escapeKey(key: string): string {
  return key.split("/").map(encodeURIComponent).join("/");
}

function toPrompt(raw: unknown, etag: string): Prompt {
  const d = raw as PromptDocument;
  if (typeof d !== "object" || d === null || typeof d.key !== "string" || d.key === "") {
    throw new Error("not a prompt document");
  }
  const p = {
    ...d,
    prompt: typeof d.prompt === "object" && d.prompt !== null ? d.prompt : {},
    etag,
    traceAttributes(): Record<string, string> {
      return {
        [ATTR_PROMPT_NAME]: d.key,
        [ATTR_PROMPT_VERSION]: d.version ?? "",
        [ATTR_PROMPT_COMMIT]: d.commit ?? "",
        [ATTR_PROMPT_SHA256]: d.sha256 ?? "",
        [ATTR_PROMPT_ENV]: d.env ?? "",
      };
    },
  };
  return Object.freeze(p) as Prompt;
}

function decodeError(status: number, body: string): PromptVaultError {
  try {
    const e = JSON.parse(body).error;
    if (typeof e?.code === "string" && e.code !== "") {
      const errs: VariableError[] = Array.isArray(e.errors)
        ? e.errors.filter((v: unknown) => typeof v === "object" && v !== null).map((v: VariableError) => ({ path: String(v.path ?? ""), message: String(v.message ?? "") }))
        : [];
      return new PromptVaultError(status, e.code, String(e.message ?? ""), errs);
    }
  } catch {
    // not the documented error shape
  }
  return new PromptVaultError(status, `http_${status}`, body.slice(0, 512).trim());
}

/** Reads a response body, refusing more than limit bytes. */
async function readLimited(res: Response, limit: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > limit) {
      await reader.cancel();
      throw new PromptVaultError(res.status, "bad_response", `answer larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

interface Entry {
  prompt: Prompt;
  raw: unknown; // the server's document, for the snapshot file
  stale: boolean; // an event (or a reconnect) says it may have changed
  checked: number; // performance.now() of the last revalidation
  inflight: boolean; // a background refetch is running
}

class NotModified extends Error {}

/**
 * Reads prompts from one server with one API key. One instance per process
 * is enough; `close()` stops its event stream.
 */
export class PromptVault {
  private readonly base: string;
  private readonly key: string;
  private readonly snapPath?: string;
  private readonly timeoutMs: number;
  private readonly backoff: [number, number];
  private readonly revalidateMs: number;
  private readonly onUpdate?: (p: Prompt) => void;
  private readonly fetch: typeof fetch;

  private readonly cache = new Map<string, Entry>();
  private lastId = ""; // last event id seen; resumes the stream
  private isConnected = false;
  private closed = false;
  private readonly stop = new AbortController();
  private streamDone: Promise<void> = Promise.resolve();
  private snapWrite: Promise<void> = Promise.resolve(); // serialises snapshot writes
  private readonly refreshes = new Set<Promise<void>>();

  constructor(opts: Options) {
    let u: URL;
    try {
      u = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`promptvault: base URL ${JSON.stringify(opts.baseUrl)}: want scheme and host, such as http://127.0.0.1:8080`);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || u.host === "") {
      throw new TypeError(`promptvault: base URL ${JSON.stringify(opts.baseUrl)}: want scheme and host, such as http://127.0.0.1:8080`);
    }
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.key = opts.apiKey;
    this.snapPath = opts.snapshotPath;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.backoff = opts.backoffMs ?? [100, 30_000];
    this.revalidateMs = opts.revalidateMs ?? 1000;
    this.onUpdate = opts.onUpdate;
    this.fetch = opts.fetch ?? globalThis.fetch;
    if (this.snapPath) {
      try {
        this.loadSnapshot(this.snapPath);
      } catch (e) {
        // A missing or corrupt file must not stop the application.
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
          process.emitWarning(`promptvault: snapshot file ${this.snapPath} unreadable; starting empty: ${e}`);
        }
      }
    }
    if (opts.events ?? true) {
      this.streamDone = this.follow();
    }
  }

  /** Whether the event stream is up. */
  get connected(): boolean {
    return this.isConnected;
  }

  /**
   * Prompt `key` as this client's API key reads it. A cached copy is
   * returned at once (never waiting on the network); it is refetched in the
   * background when an event says it changed, or, while the stream is down,
   * at most every `revalidateMs`. Without a cached copy `get` asks the
   * server.
   */
  async get(key: string): Promise<Prompt> {
    // A cached key was checked when it was first fetched; the check (a
    // regular expression) would otherwise be most of a cached get's cost.
    const e = this.cache.get(key);
    if (e) {
      const need = e.stale || (!this.isConnected && performance.now() - e.checked >= this.revalidateMs);
      if (need && !e.inflight) this.refreshInBackground(key, e);
      return e.prompt;
    }
    checkKey(key);
    const [p, raw] = await this.fetchPrompt(key, "");
    this.store(key, p, raw);
    return p;
  }

  /** Refetches `key` now (`If-None-Match`). On failure the cached copy is kept and the error thrown; a 404 drops it. */
  async refresh(key: string): Promise<Prompt> {
    checkKey(key);
    const etag = this.cache.get(key)?.prompt.etag ?? "";
    let got: [Prompt, unknown];
    try {
      got = await this.fetchPrompt(key, etag);
    } catch (err) {
      if (err instanceof NotModified) {
        const e = this.cache.get(key);
        if (e) {
          e.stale = false;
          e.checked = performance.now();
          return e.prompt;
        }
        got = await this.fetchPrompt(key, ""); // dropped meanwhile: ask again
      } else {
        if (err instanceof PromptVaultError && err.status === 404 && this.cache.delete(key)) {
          this.saveSnapshot();
        }
        throw err;
      }
    }
    this.store(key, got[0], got[1]);
    return got[0];
  }

  /**
   * Renders prompt `key` on the server with `variables`. Rendering needs the
   * server: its sandbox and limits decide what a template may do. A 422
   * `validation_failed` lists each variable problem in `errors`.
   */
  async render(key: string, variables: Record<string, unknown> = {}): Promise<Rendered> {
    checkKey(key);
    const body = JSON.stringify({ variables });
    const [status, text] = await this.request("POST", `/v1/prompts/${escapeKey(key)}/render`, body, { "Content-Type": "application/json" }, MAX_RENDER);
    if (status !== 200) throw decodeError(status, text);
    let r: Rendered;
    try {
      r = JSON.parse(text);
    } catch (e) {
      throw new PromptVaultError(status, "bad_response", `render ${key}: ${e}`);
    }
    if (typeof r !== "object" || r === null || !Array.isArray(r.messages)) {
      throw new PromptVaultError(status, "bad_response", `render ${key}: not a render answer`);
    }
    return r;
  }

  /** Stops the event stream; resolves once it and pending snapshot writes have finished. */
  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    await this.streamDone;
    await Promise.allSettled([...this.refreshes]);
    await this.snapWrite;
  }

  // -- HTTP ----------------------------------------------------------------

  private async request(method: string, path: string, body: string | undefined, headers: Record<string, string>, limit: number): Promise<[number, string, Response]> {
    let res: Response;
    try {
      res = await this.fetch(this.base + path, {
        method,
        body,
        headers: { Authorization: `Bearer ${this.key}`, ...headers },
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: "error",
      });
      if (res.status === 304) {
        await res.body?.cancel();
        return [304, "", res];
      }
      return [res.status, await readLimited(res, limit), res];
    } catch (e) {
      if (e instanceof PromptVaultError) throw e;
      throw new PromptVaultError(0, "unavailable", `${method} ${path}: ${(e as Error).cause ?? e}`, [], { cause: e });
    }
  }

  private async fetchPrompt(key: string, etag: string): Promise<[Prompt, unknown]> {
    const [status, text, res] = await this.request("GET", `/v1/prompts/${escapeKey(key)}`, undefined, etag ? { "If-None-Match": etag } : {}, MAX_DOC);
    if (status === 304) throw new NotModified();
    if (status !== 200) throw decodeError(status, text);
    try {
      const raw = JSON.parse(text);
      return [toPrompt(raw, res.headers.get("ETag") ?? ""), raw];
    } catch (e) {
      throw new PromptVaultError(status, "bad_response", `get ${key}: not a prompt document: ${e}`);
    }
  }

  // -- cache ---------------------------------------------------------------

  private store(key: string, p: Prompt, raw: unknown): void {
    const old = this.cache.get(key);
    this.cache.set(key, { prompt: p, raw, stale: false, checked: performance.now(), inflight: false });
    if (!old || old.prompt.etag !== p.etag) {
      if (this.onUpdate) {
        try {
          this.onUpdate(p);
        } catch (e) {
          process.emitWarning(`promptvault: onUpdate threw: ${e}`);
        }
      }
      this.saveSnapshot();
    }
  }

  private refreshInBackground(key: string, e: Entry): void {
    if (this.closed) return;
    e.inflight = true;
    const run = this.refresh(key).then(
      () => undefined,
      () => {
        // The last good copy stays; try again after the interval.
        const cur = this.cache.get(key);
        if (cur) cur.checked = performance.now();
      },
    );
    const done = run.finally(() => {
      const cur = this.cache.get(key);
      if (cur) cur.inflight = false;
      this.refreshes.delete(done);
    });
    this.refreshes.add(done);
  }

  private markAllStale(): void {
    for (const [key, e] of this.cache) {
      e.stale = true;
      if (!e.inflight) this.refreshInBackground(key, e);
    }
  }

  // -- event stream ----------------------------------------------------------

  /** Keeps the event stream open until close, reconnecting with Last-Event-ID after a backoff with full jitter. */
  private async follow(): Promise<void> {
    const [lo, hi] = this.backoff;
    let delay = lo;
    while (!this.closed) {
      let gotEvents = false;
      try {
        gotEvents = await this.streamOnce();
      } catch {
        // reconnect below
      }
      this.isConnected = false;
      if (this.closed) return;
      if (gotEvents) delay = lo;
      await this.sleep(delay / 2 + Math.random() * (delay / 2));
      delay = Math.min(2 * delay, hi);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.stop.signal.addEventListener("abort", done, { once: true });
    });
  }

  private async streamOnce(): Promise<boolean> {
    const conn = new AbortController();
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    // Aborting the request does not always settle a read already pending on
    // the body (seen on Node 20 after another fetch was cancelled), so the
    // reader is cancelled too: that ends the pending read at once.
    const hangUp = () => {
      conn.abort();
      reader?.cancel().catch(() => undefined);
    };
    this.stop.signal.addEventListener("abort", hangUp, { once: true });
    let idle: ReturnType<typeof setTimeout> | undefined;
    const resetIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(hangUp, STREAM_IDLE_MS);
    };
    try {
      const resume = this.lastId;
      const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, Accept: "text/event-stream" };
      if (resume) headers["Last-Event-ID"] = resume;
      resetIdle();
      const res = await this.fetch(this.base + "/v1/events", { headers, signal: conn.signal, redirect: "error" });
      if (res.status !== 200 || !res.body) {
        throw decodeError(res.status, await readLimited(res, 64 << 10).catch(() => ""));
      }
      this.isConnected = true;
      if (!resume) {
        // Without a resume point, changes between our fetches and this
        // connection are unknown: revalidate everything once.
        this.markAllStale();
      }
      reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      let id = "";
      let event = "";
      let data: string[] = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.closed) return true;
        resetIdle();
        buf += dec.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          let line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line === "") {
            if (event || data.length) this.dispatch(event, data.join("\n"));
            if (id) this.lastId = id;
            id = "";
            event = "";
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "id") id = value;
          else if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
        if (buf.length > MAX_LINE) {
          await reader.cancel();
          throw new Error("event stream line longer than 1 MiB");
        }
      }
    } finally {
      clearTimeout(idle);
      this.stop.signal.removeEventListener("abort", hangUp);
      conn.abort();
    }
  }

  private dispatch(event: string, data: string): void {
    if (event === "pointer") {
      let key: unknown;
      try {
        key = JSON.parse(data)?.key;
      } catch {
        return;
      }
      if (typeof key !== "string") return;
      const e = this.cache.get(key);
      if (e) {
        e.stale = true;
        if (!e.inflight) this.refreshInBackground(key, e);
      }
    } else if (event === "reset") {
      this.markAllStale();
    }
  }

  // -- snapshot file -----------------------------------------------------------

  private loadSnapshot(path: string): void {
    const sf = JSON.parse(readFileSync(path, "utf8"));
    if (typeof sf !== "object" || sf === null || typeof sf.prompts !== "object" || sf.prompts === null) {
      throw new Error("not a snapshot file");
    }
    const etags = typeof sf.etags === "object" && sf.etags !== null ? sf.etags : {};
    for (const [key, raw] of Object.entries(sf.prompts)) {
      let p: Prompt;
      try {
        checkKey(key); // only valid keys enter the cache: get trusts cached keys
        p = toPrompt(raw, String(etags[key] ?? ""));
      } catch {
        continue;
      }
      if (p.key !== key) continue;
      // Stale: served at once, revalidated on first use.
      this.cache.set(key, { prompt: p, raw, stale: true, checked: 0, inflight: false });
    }
  }

  /**
   * Writes the cache to the snapshot file atomically: a temporary file in
   * the same directory, fsynced, then renamed over the old one, so a crash
   * leaves the old or the new file, never half of one. Writes are chained,
   * each taking the cache as it is when its turn comes. The format is the
   * Go and Python SDKs' too.
   */
  private saveSnapshot(): void {
    const path = this.snapPath;
    if (!path) return;
    this.snapWrite = this.snapWrite.then(async () => {
      const prompts: Record<string, unknown> = {};
      const etags: Record<string, string> = {};
      for (const [k, e] of this.cache) {
        prompts[k] = e.raw;
        etags[k] = e.prompt.etag;
      }
      const body = JSON.stringify({ saved_at: new Date().toISOString(), prompts, etags });
      const tmp = join(dirname(path), `.${basename(path)}.tmp${randomBytes(6).toString("hex")}`);
      try {
        const f = await open(tmp, "wx", 0o644);
        try {
          await f.writeFile(body);
          await f.sync();
        } finally {
          await f.close();
        }
        await rename(tmp, path);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        process.emitWarning(`promptvault: write snapshot file ${path}: ${e}`);
      }
    });
  }
}
