// promptvault dashboard: plain JavaScript over the admin API (/v1/admin/*),
// authenticated by the session cookie from POST /ui/session. Every write
// sends the session's CSRF token. Data from the server is only ever put in
// the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  session: null,      // {key_id, csrf_token, expires_at}
  key: null,          // prompt shown in the prompt view
  page: null,         // last versions page (live, staging, staging_enabled)
  versions: [],       // versions loaded so far, newest first
  cursor: null,       // next_cursor of the versions list
  picked: [],         // labels chosen for comparison (at most two)
  auditCursor: null,
  searchTimer: 0,
  loadSeq: 0,         // discards answers of superseded version loads
};

// ---- HTTP ----

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf_token;
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    const e = (data && data.error) || {};
    if (res.status === 401 && path !== "/ui/session") {
      state.session = null;
      showSignin("Your session ended; sign in again.");
    }
    throw new APIError(res.status, e.code || "error", e.message || res.statusText);
  }
  return data;
}

// promptPath is the admin path of a prompt; keys contain "/" between
// segments, which stay unescaped, and labels are escaped whole.
function promptPath(key, rest) {
  return "/v1/admin/prompts/" + key.split("/").map(encodeURIComponent).join("/") + rest;
}

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(text, kind, title) {
  return el("span", { class: "badge " + kind, text, title });
}

function shortSHA(s) { return s ? s.slice(0, 7) : ""; }

function firstLine(s) {
  const i = (s || "").indexOf("\n");
  return i < 0 ? (s || "") : s.slice(0, i);
}

function when(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

let toastTimer = 0;
function toast(msg, kind) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "toast " + (kind || "ok");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, kind === "error" ? 8000 : 4000);
}

function fail(e) {
  if (e instanceof APIError && e.status === 401) return;
  toast(e.message || String(e), "error");
}

// confirmAction asks before a change; resolves true on Confirm. extra,
// when given ({label, title, run}), is a third button that closes the
// dialog, does not confirm, and runs extra.run instead.
function confirmAction(title, text, okLabel, extra) {
  const d = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel || "Confirm";
  const x = $("confirm-extra");
  x.hidden = !extra;
  x.textContent = extra ? extra.label : "";
  x.title = extra && extra.title ? extra.title : "";
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => {
      if (extra && d.returnValue === "extra") extra.run();
      resolve(d.returnValue === "ok");
    }, { once: true });
    d.showModal();
  });
}

// ---- views ----

const views = ["signin", "prompts", "prompt", "version", "editor", "audit", "deliveries", "settings", "webhooks"];

function show(name) {
  for (const v of views) $("view-" + v).hidden = v !== name;
  $("top").hidden = name === "signin";
  for (const [id, v] of [["nav-prompts", "prompts"], ["nav-audit", "audit"], ["nav-deliveries", "deliveries"], ["nav-settings", "settings"], ["nav-webhooks", "webhooks"]]) {
    $(id).classList.toggle("active", v === name || (v === "prompts" && ["prompt", "version", "editor"].includes(name)));
  }
}

function showSignin(msg) {
  show("signin");
  $("signin-error").textContent = msg || "";
  $("signin-key").focus();
}

async function route() {
  if (!state.session) {
    try {
      state.session = await api("GET", "/ui/session");
    } catch (_) {
      showSignin("");
      return;
    }
  }
  $("whoami").textContent = state.session.key_id;
  const h = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  try {
    if (h.startsWith("/p/")) {
      // #/p/KEY?diff=FROM..TO (the link in Slack messages) opens that diff.
      const [key, query] = h.slice(3).split("?");
      // #/p/KEY?v=LABEL opens one version (edit.js).
      if ((query || "").startsWith("v=")) {
        await openVersion(key, query.slice(2));
        return;
      }
      await openPrompt(key);
      const m = /^diff=(.+?)\.\.(.+)$/.exec(query || "");
      if (m) await showDiff(m[1], m[2]);
    } else if (h.startsWith("/edit/") || h === "/new") {
      // #/edit/KEY?from=LABEL or #/new (edit.js)
      const [key, query] = h.slice(6).split("?");
      await openEditor(h === "/new" ? "" : key, (query || "").replace(/^from=/, ""));
    } else if (h === "/webhooks") {
      show("webhooks");
      await loadWebhooks(); // webhooks.js
    } else if (h === "/audit") {
      show("audit");
      await loadAudit(true);
    } else if (h === "/deliveries") {
      show("deliveries");
      await loadDeliveries(true);
    } else if (h === "/settings") {
      show("settings");
      await loadSettings();
    } else {
      show("prompts");
      await loadPrompts();
    }
  } catch (e) {
    fail(e);
  }
}

// ---- prompts ----

let promptsCache = [];

async function loadPrompts() {
  const data = await api("GET", "/v1/admin/prompts");
  promptsCache = data.prompts;
  $("staging-off-note").hidden = data.staging_enabled;
  renderPrompts();
}

function renderPrompts() {
  const f = $("prompt-filter").value.trim().toLowerCase();
  const tb = $("prompt-list");
  tb.replaceChildren();
  const shown = promptsCache.filter((p) => !f || p.key.includes(f));
  for (const p of shown) {
    const href = "#/p/" + p.key;
    tb.append(el("tr", { "data-key": p.key, class: "clickable", onclick: () => { location.hash = href; } },
      el("td", {}, el("a", { href, text: p.key, class: "key" }), p.archived ? badge("archived", "muted") : null),
      el("td", {}, p.live ? badge(p.live.version, "live") : el("span", { class: "muted", text: "—" })),
      el("td", {}, p.staging ? badge(p.staging.version, "staging") : el("span", { class: "muted", text: "—" })),
      el("td", { text: p.newest || "—" }),
      el("td", { class: "num", text: p.versions }),
      el("td", { class: "num", text: p.drafts }),
    ));
  }
  $("prompt-empty").hidden = shown.length > 0;
}

// ---- one prompt ----

async function openPrompt(key) {
  show("prompt");
  if (state.key !== key) {
    state.key = key;
    state.picked = [];
    $("version-search").value = "";
    $("diff-table").tBodies[0].replaceChildren();
    $("diff-unified").textContent = "";
    $("diff-summary").textContent = "";
    selectTab("versions");
  }
  $("prompt-title").textContent = key;
  await loadVersions(true);
}

function selectTab(name) {
  for (const t of ["versions", "diff"]) {
    $("tab-" + t).classList.toggle("active", t === name);
    $("tab-" + t).setAttribute("aria-selected", String(t === name));
    $("pane-" + t).hidden = t !== name;
  }
}

async function loadVersions(reset) {
  const seq = ++state.loadSeq;
  const q = $("version-search").value.trim();
  let path = promptPath(state.key, "/versions?limit=50");
  if (q) path += "&q=" + encodeURIComponent(q);
  if (!reset && state.cursor) path += "&cursor=" + encodeURIComponent(state.cursor);
  const page = await api("GET", path);
  if (seq !== state.loadSeq) return; // a newer search or reload won
  state.page = page;
  state.versions = reset ? page.versions : state.versions.concat(page.versions);
  state.cursor = page.next_cursor;
  renderPointers();
  renderVersions();
  fillDiffSelects();
}

function renderPointers() {
  const p = state.page;
  $("badge-live").textContent = p.live || "none";
  $("badge-live").classList.toggle("none", !p.live);
  let st = p.staging || "none";
  if (p.staging && !p.staging_enabled) st += " (disabled)";
  $("badge-staging").textContent = st;
  $("badge-staging").classList.toggle("none", !p.staging || !p.staging_enabled);
  $("clear-staging").hidden = !p.staging || !p.staging_enabled;
  $("promote-staging").hidden = !p.staging || !p.staging_enabled || !/^v\d+$/.test(p.staging) || p.staging === p.live;
  $("edit-prompt").href = "#/edit/" + state.key + (p.live && /^v\d+$/.test(p.live) ? "?from=" + encodeURIComponent(p.live) : "");
}

function liveNumber() {
  const m = /^v(\d+)$/.exec(state.page.live || "");
  return m ? Number(m[1]) : null;
}

function renderVersions() {
  const tb = $("versions");
  tb.replaceChildren();
  const p = state.page;
  const live = liveNumber();
  for (const v of state.versions) {
    const isLive = v.version === p.live;
    const isStaging = v.version === p.staging;
    const badges = [badge(v.version, v.draft ? "draft" : "version")];
    if (isLive) badges.push(badge("live", "live"));
    if (isStaging) badges.push(badge(p.staging_enabled ? "staging" : "staging (off)", "staging"));
    if (v.draft) {
      const from = v.origin ? v.origin.replace(/^branch:/, "branch ").replace(/^pr:/, "PR #") : "draft";
      // GitHub mode: the pull request the draft is reviewed in, one click away.
      badges.push(v.pull_request_url
        ? el("a", { class: "badge muted pr-link", href: v.pull_request_url, target: "_blank", rel: "noopener", text: from, title: "Open the pull request",
          onclick: (ev) => ev.stopPropagation() })
        : badge(from, "muted"));
    }
    if (!v.valid) badges.push(badge("invalid", "invalid", (v.problems || []).map((x) => `${x.path}:${x.line}:${x.column}: ${x.message}`).join("\n")));
    if (v.deleted) badges.push(badge("deletes prompt", "invalid"));

    const actions = el("div", { class: "row-actions" });
    const act = (label, cls, fn, title) => actions.append(el("button", { type: "button", class: "small " + cls, text: label, title, "data-action": label.toLowerCase().replace(/ /g, "-"), onclick: (ev) => { ev.stopPropagation(); fn(v); } }));
    if (!v.draft && v.valid && !isLive) {
      if (live !== null && v.number < live) act("Rollback", "warn", rollback, "Point live back at this older version");
      else act("Promote", "primary", promote, "Point live at this version");
    }
    if (v.valid && !isStaging && p.staging_enabled && !v.deleted) act("Stage", "", setStaging, "Point staging at this version");
    if (v.draft && v.valid && !v.deleted) act("Merge and promote", "primary", mergeDraft, "Merge this draft into the tracked branch (its pull request in GitHub mode); the merge promotes as any merge does");
    if (v.draft) act("Delete", "danger", deleteDraft, "Delete this draft");

    const pick = el("input", { type: "checkbox", checked: state.picked.includes(v.version), title: "Compare", "aria-label": "Compare " + v.version,
      onclick: (ev) => { ev.stopPropagation(); togglePick(v.version, ev.target.checked); } });
    const open = () => { location.hash = "#/p/" + state.key + "?v=" + encodeURIComponent(v.version); };
    tb.append(el("tr", { "data-label": v.version, class: (isLive ? "is-live " : "") + (v.draft ? "is-draft" : ""), onclick: open, title: "Open " + v.version },
      el("td", { class: "pick" }, pick),
      el("td", { class: "badges" }, ...badges),
      el("td", { class: "msg", title: v.message, text: firstLine(v.message) }),
      el("td", { class: "author", text: v.author }),
      el("td", { class: "date", text: when(v.created_at) }),
      el("td", { class: "sha" }, el("code", { text: shortSHA(v.commit), title: v.commit })),
      el("td", { class: "sha256" }, el("code", { text: (v.sha256 || "").slice(0, 12), title: "SHA-256 " + (v.sha256 || "") })),
      el("td", { class: "actions" }, actions),
    ));
  }
  $("versions-empty").hidden = state.versions.length > 0;
  $("load-more").hidden = !state.cursor;
  $("compare").disabled = state.picked.length !== 2;
}

function togglePick(label, on) {
  state.picked = state.picked.filter((l) => l !== label);
  if (on) state.picked.push(label);
  if (state.picked.length > 2) state.picked = state.picked.slice(-2);
  renderVersions();
}

// order puts the older of two labels first (drafts count as newest).
function order(a, b) {
  const rank = (l) => { const m = /^v(\d+)$/.exec(l); return m ? Number(m[1]) : Infinity; };
  return rank(a) <= rank(b) ? [a, b] : [b, a];
}

function fillDiffSelects() {
  for (const id of ["diff-from", "diff-to"]) {
    const s = $(id);
    const cur = s.value;
    s.replaceChildren(...state.versions.map((v) => el("option", { value: v.version, text: v.version + "  " + firstLine(v.message).slice(0, 40) })));
    if (cur && state.versions.some((v) => v.version === cur)) s.value = cur;
  }
  if (!$("diff-from").value || $("diff-from").value === $("diff-to").value) {
    const pub = state.versions.filter((v) => !v.draft);
    if (pub.length >= 2) {
      $("diff-from").value = pub[1].version;
      $("diff-to").value = pub[0].version;
    }
  }
}

async function showDiff(from, to) {
  selectTab("diff");
  $("diff-from").value = from;
  $("diff-to").value = to;
  const d = await api("GET", promptPath(state.key, "/diff?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to)));
  $("diff-summary").textContent = d.identical ? `${from} and ${to} are identical` : `${from} → ${to}: +${d.added} −${d.removed}`;
  $("diff-unified").textContent = d.unified || "(identical)";
  const tb = $("diff-table").tBodies[0];
  tb.replaceChildren();
  if (d.identical) {
    tb.append(el("tr", { class: "hunk" }, el("td", { colSpan: 4, text: "No differences." })));
  }
  for (const r of d.rows) {
    if (r.kind === "hunk") {
      tb.append(el("tr", { class: "hunk" }, el("td", { colSpan: 4, text: r.header })));
      continue;
    }
    const side = (l, cls) => [
      el("td", { class: "ln", text: l ? l.line : "" }),
      el("td", { class: "code " + (l ? cls : "empty"), text: l ? l.text : "" }),
    ];
    const lcls = r.kind === "equal" ? "" : "del";
    const rcls = r.kind === "equal" ? "" : "add";
    tb.append(el("tr", { class: "row " + r.kind }, ...side(r.left, lcls), ...side(r.right, rcls)));
  }
  applyUnifiedToggle();
}

function applyUnifiedToggle() {
  const u = $("diff-unified-toggle").checked;
  $("diff-unified").hidden = !u;
  $("diff-table").hidden = u;
}

// ---- actions ----

async function change(title, text, okLabel, method, path, body, done, extra) {
  if (!(await confirmAction(title, text, okLabel, extra))) return;
  try {
    const res = await api(method, path, body);
    toast(done(res));
    await loadVersions(true);
  } catch (e) {
    fail(e);
  }
}

function describe(res, what) {
  if (!res.changed) return `${what}: unchanged (${res.to || "none"})`;
  return `${what}: ${res.from || "none"} → ${res.to || "none"}`;
}

function promote(v) {
  return change("Promote " + v.version + "?", `Live of ${state.key} moves from ${state.page.live || "none"} to ${v.version}. Applications reading with live keys get it at once.`,
    "Promote", "POST", promptPath(state.key, "/promote"), { version: v.version }, (r) => describe(r, "Live"));
}

// rollback also offers to continue from the older version in the editor
// instead: its text becomes a draft on a new branch, reviewed and merged
// like any edit, so the tracked branch does not drift from live.
function rollback(v) {
  const key = state.key;
  const cont = { label: "Continue from " + v.version + " in the editor", title: "Open " + v.version + "'s source in the editor to save it as a draft instead; live does not move",
    run: () => { location.hash = "#/edit/" + key + "?from=" + encodeURIComponent(v.version); } };
  return change("Roll back to " + v.version + "?", `Live of ${key} goes back from ${state.page.live} to ${v.version}. Newer versions stay in history and can be promoted again. Or continue from ${v.version} in the editor: its text becomes a draft you can change and merge.`,
    "Roll back", "POST", promptPath(key, "/rollback"), { version: v.version }, (r) => describe(r, "Live"), cont);
}

function setStaging(v) {
  return change("Stage " + v.version + "?", `Staging of ${state.key} moves from ${state.page.staging || "none"} to ${v.version}. Test keys read it; live is untouched.`,
    "Set staging", "PUT", promptPath(state.key, "/staging"), { version: v.version }, (r) => describe(r, "Staging"));
}

function clearStaging() {
  return change("Clear staging?", `Staging of ${state.key} (${state.page.staging}) is unset; test keys read live again.`,
    "Clear staging", "DELETE", promptPath(state.key, "/staging"), undefined, (r) => describe(r, "Staging"));
}

function promoteStaging() {
  return change("Promote staging?", `Live of ${state.key} moves from ${state.page.live || "none"} to ${state.page.staging}, the version staging points at.`,
    "Promote", "POST", promptPath(state.key, "/promote"), { version: "staging" }, (r) => describe(r, "Live"));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// mergeDraft merges, then shows the new live version. In local mode the
// merge answer already has it; in GitHub mode the merge is promoted when
// GitHub's webhook about it has been processed, a moment later, so the
// page follows the versions list until live moves (or says why it may not).
async function mergeDraft(v) {
  const name = v.version.replace(/^draft:/, "");
  const key = state.key;
  const before = state.page.live;
  if (!(await confirmAction("Merge " + v.version + "?", `The draft is merged into the tracked branch (in GitHub mode its pull request is merged through GitHub, whose reviews and branch protection still decide). The merge becomes the next version and promotes as any merge does.`,
    "Merge and promote"))) return;
  let r;
  try {
    r = await api("POST", promptPath(key, "/drafts/" + encodeURIComponent(name) + "/merge"), {});
  } catch (e) {
    fail(e);
    return;
  }
  await loadVersions(true);
  if (r.live && r.live.commit === r.commit) {
    toast(`Merged ${v.version}: live ${before || "none"} → ${r.live.version}`);
    return;
  }
  toast(`Merged ${v.version} (commit ${shortSHA(r.commit)}); waiting for the promotion…`);
  for (let i = 0; i < 60 && state.key === key; i++) {
    await sleep(500);
    await loadVersions(true);
    if (state.page.live !== before) {
      toast(`Merged ${v.version}: live ${before || "none"} → ${state.page.live}`);
      return;
    }
  }
  if (state.key === key) {
    toast(`Merged ${v.version}; live is still ${before || "none"}. A merge is promoted when GitHub's webhook about it is processed (see Deliveries), and not at all under the hold label or --auto-promote none.`, "error");
  }
}

function deleteDraft(v) {
  const name = v.version.replace(/^draft:/, "");
  return change("Delete " + v.version + "?", `The draft is removed from the registry (staging pointing at it is cleared). It comes back only when its branch or pull request gets a new commit.`,
    "Delete draft", "DELETE", promptPath(state.key, "/drafts/" + encodeURIComponent(name)), undefined, () => `Deleted ${v.version}`);
}

// ---- audit ----

async function loadAudit(reset) {
  let path = "/v1/admin/audit?limit=50";
  if (!reset && state.auditCursor) path += "&cursor=" + encodeURIComponent(state.auditCursor);
  const page = await api("GET", path);
  const tb = $("audit");
  if (reset) tb.replaceChildren();
  for (const e of page.entries) {
    tb.append(el("tr", { "data-seq": e.seq },
      el("td", { class: "num", text: e.seq }),
      el("td", { class: "date", text: when(e.at) }),
      el("td", {}, badge(e.action, "action " + e.action)),
      el("td", { text: e.actor }),
      el("td", {}, e.key ? el("a", { href: "#/p/" + e.key, text: e.key }) : null),
      el("td", {}, e.key && /^(v\d+|draft:.+)$/.test(e.version || "")
        ? el("a", { href: "#/p/" + e.key + "?v=" + encodeURIComponent(e.version), text: e.version, title: "Open " + e.version })
        : (e.version || "")),
      el("td", { text: e.env || "" }),
      el("td", { class: "detail", text: e.detail || "" }),
    ));
  }
  state.auditCursor = page.next_cursor;
  $("audit-more").hidden = !page.next_cursor;
}

// ---- settings ----

function renderSetting(on) {
  $("staging-toggle").checked = on;
  $("staging-state").textContent = on ? "Test keys read staging where it is set." : "Staging is off: test keys read live.";
}

async function loadSettings() {
  const s = await api("GET", "/v1/admin/settings");
  renderSetting(s.staging_enabled);
}

async function toggleStaging() {
  const on = $("staging-toggle").checked;
  $("staging-toggle").disabled = true;
  try {
    const s = await api("PATCH", "/v1/admin/settings", { staging_enabled: on });
    renderSetting(s.staging_enabled);
    toast("Staging " + (s.staging_enabled ? "enabled" : "disabled"));
  } catch (e) {
    renderSetting(!on);
    fail(e);
  } finally {
    $("staging-toggle").disabled = false;
  }
}

// ---- wiring ----

function wire() {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("signin-key").value.trim();
    $("signin-error").textContent = "";
    $("signin-submit").disabled = true;
    try {
      state.session = await api("POST", "/ui/session", { key });
      $("signin-key").value = "";
      await route();
    } catch (e) {
      $("signin-error").textContent = e.message;
    } finally {
      $("signin-submit").disabled = false;
    }
  });
  $("signout").addEventListener("click", async () => {
    try { await api("DELETE", "/ui/session"); } catch (_) { /* signed out anyway */ }
    state.session = null;
    state.key = null;
    showSignin("Signed out.");
  });
  $("prompt-filter").addEventListener("input", renderPrompts);
  $("sync-now").addEventListener("click", async () => {
    $("sync-now").disabled = true;
    try {
      const r = await api("POST", "/v1/admin/sync");
      toast(`Synced: ${r.commits} new commit(s), ${r.versions.length} new version(s)`);
      await loadPrompts();
    } catch (e) { fail(e); } finally { $("sync-now").disabled = false; }
  });
  $("tab-versions").addEventListener("click", () => selectTab("versions"));
  $("tab-diff").addEventListener("click", () => { selectTab("diff"); fillDiffSelects(); });
  $("version-search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => loadVersions(true).catch(fail), 250);
  });
  $("load-more").addEventListener("click", () => loadVersions(false).catch(fail));
  $("compare").addEventListener("click", () => {
    const [a, b] = order(state.picked[0], state.picked[1]);
    showDiff(a, b).catch(fail);
  });
  $("diff-show").addEventListener("click", () => showDiff($("diff-from").value, $("diff-to").value).catch(fail));
  $("diff-unified-toggle").addEventListener("change", applyUnifiedToggle);
  $("clear-staging").addEventListener("click", clearStaging);
  $("promote-staging").addEventListener("click", promoteStaging);
  $("audit-more").addEventListener("click", () => loadAudit(false).catch(fail));
  $("staging-toggle").addEventListener("change", toggleStaging);
  window.addEventListener("hashchange", route);
}

wire();
route();
