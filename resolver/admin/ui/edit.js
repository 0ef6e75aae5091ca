// promptvault dashboard: one version's page (source with line numbers,
// parsed fields, metadata) and the editor (CodeMirror 6 from
// vendor/editor.js: YAML highlighting, problems as you type from
// POST /v1/admin/validate, a preview from POST /v1/admin/preview, and
// "Save draft" as a commit on a branch through PUT .../drafts/{name}).
// Uses app.js's helpers ($, el, api, badge, when, toast, fail, show,
// promptPath); app.js routes here.
"use strict";

const edit = {
  cm: null,          // the CodeMirror editor, made on first use
  key: "",           // prompt being edited ("" for a new prompt until typed)
  base: "",          // commit the edit started from (sent as "base")
  timer: 0,          // debounces validation while typing
  seq: 0,            // discards answers of superseded validations
};

// ---- one version ----

function metaRow(dl, label, value, mono) {
  dl.append(el("dt", { text: label }), el("dd", {}, mono ? el("code", { text: value }) : value));
}

async function openVersion(key, label) {
  show("version");
  const v = await api("GET", promptPath(key, "/versions/" + encodeURIComponent(label)));
  $("version-key").textContent = key;
  $("version-label").textContent = v.version;
  $("version-back").href = "#/p/" + key;
  const badges = $("version-badges");
  badges.replaceChildren();
  for (const p of v.pointers || []) badges.append(badge(p, p));
  if (v.draft) badges.append(badge("draft", "draft"));
  if (!v.valid) badges.append(badge("invalid", "invalid"));

  const actions = $("version-actions");
  actions.replaceChildren();
  if (!v.deleted) {
    const from = "#/edit/" + key + "?from=" + encodeURIComponent(v.version);
    const isLive = (v.pointers || []).includes("live");
    actions.append(el("a", { class: "button", href: from, id: "version-edit", "data-action": "edit",
      text: v.draft || isLive ? "Edit in the editor" : "Continue from this version in the editor" }));
  }

  const meta = $("version-meta");
  meta.replaceChildren();
  metaRow(meta, "Version", v.version);
  metaRow(meta, "Commit", v.commit, true);
  metaRow(meta, "SHA-256", v.sha256, true);
  metaRow(meta, "Path", v.path, true);
  metaRow(meta, "Size", v.size + " bytes");
  metaRow(meta, "Author", v.author);
  metaRow(meta, "Date", when(v.created_at));
  metaRow(meta, "Message", el("pre", { text: v.message }));
  if (v.origin) metaRow(meta, "Origin", v.origin);
  if (v.pull_request_url) metaRow(meta, "Pull request", el("a", { href: v.pull_request_url, target: "_blank", rel: "noopener", text: v.pull_request_url, id: "version-pr" }));

  const fields = $("version-fields");
  fields.replaceChildren();
  const p = v.prompt || {};
  for (const f of ["description", "model", "fallback_model", "temperature", "max_tokens", "top_p", "cache_timeout"]) {
    if (p[f] !== undefined && p[f] !== null) metaRow(fields, f, String(p[f]), true);
  }
  for (const f of ["input_schema", "output_schema", "config"]) {
    if (p[f]) metaRow(fields, f, el("pre", { text: JSON.stringify(p[f], null, 2) }));
  }
  if (!v.prompt) fields.append(el("dd", { class: "muted", text: v.valid ? "(no fields)" : "Invalid: see the problems." }));

  const bad = new Set();
  const probs = $("version-problems");
  probs.replaceChildren();
  for (const x of v.problems || []) {
    bad.add(x.line);
    probs.append(el("li", { text: `${x.line}:${x.column}: ${x.message}` }));
  }
  const tb = $("version-source").tBodies[0];
  tb.replaceChildren();
  const lines = v.source.replace(/\n$/, "").split("\n");
  lines.forEach((text, i) => {
    tb.append(el("tr", { class: bad.has(i + 1) ? "bad" : "", "data-line": i + 1 },
      el("td", { class: "ln", text: i + 1 }), el("td", { class: "code", text })));
  });
}

// ---- the editor ----

const newPromptSource = `description: What this prompt is for
model: gpt-4o
temperature: 0.2
template: |
  Answer the question: {{ question }}
input_schema:
  type: object
  properties:
    question: {type: string}
  required: [question]
`;

// stamp is the time as YYYYMMDDHHMM (UTC), to keep suggested branch names
// apart.
function stamp() { return new Date().toISOString().slice(0, 16).replace(/[-:T]/g, ""); }

function editorKey() { return edit.key || $("editor-key").value.trim(); }

async function openEditor(key, from) {
  show("editor");
  edit.key = key;
  edit.base = "";
  $("editor-key").value = key;
  $("editor-key").disabled = !!key;
  $("editor-title").textContent = key ? "Edit " + key : "New prompt";
  $("editor-back").href = key ? "#/p/" + key : "#/";
  $("editor-result").textContent = "";
  $("preview-out").replaceChildren();
  $("preview-error").textContent = "";
  let source = newPromptSource;
  $("editor-from").textContent = key ? "" : "A new prompt is a draft like any other edit: it becomes a version when its branch is merged.";
  if (key && from) {
    const v = await api("GET", promptPath(key, "/versions/" + encodeURIComponent(from)));
    source = v.source;
    // Editing a draft continues its branch; editing a version starts a
    // new branch from the tracked branch (base "" = its head when saved),
    // named for where it came from.
    edit.base = v.draft ? v.commit : "";
    if (v.draft) {
      $("editor-branch").value = /^draft:pr-\d+$/.test(v.version) ? "" : v.version.replace(/^draft:/, "");
      $("editor-from").textContent = `Starting from ${v.version} (commit ${shortSHA(v.commit)}); Save draft adds a commit to it.`;
    } else {
      $("editor-branch").value = key.split("/").pop().replace(/\.{2,}/g, ".").slice(0, 40) + "-from-" + v.version + "-" + stamp();
      $("editor-from").textContent = `Starting from ${v.version} (commit ${shortSHA(v.commit)}). Save draft commits this text on a new branch ` +
        `from the tracked branch, so it is reviewed and merged like any edit and becomes the next version.`;
    }
  } else {
    $("editor-branch").value = "";
  }
  if (!$("editor-branch").value) $("editor-branch").value = "edit-" + stamp();
  if (!edit.cm) {
    edit.cm = PVEditor.create($("editor"), { doc: source, onChange: scheduleValidate });
  } else {
    edit.cm.setValue(source);
  }
  await validateNow();
}

function scheduleValidate() {
  clearTimeout(edit.timer);
  edit.timer = setTimeout(() => validateNow().catch(fail), 250);
}

async function validateNow() {
  const key = editorKey();
  const list = $("editor-problems");
  if (!key) {
    list.replaceChildren(el("li", { text: "Give the new prompt a key." }));
    return;
  }
  const seq = ++edit.seq;
  let r;
  try {
    r = await api("POST", "/v1/admin/validate", { key, source: edit.cm.getValue() });
  } catch (e) {
    if (seq !== edit.seq) return;
    list.replaceChildren(el("li", { text: e.message }));
    return;
  }
  if (seq !== edit.seq) return; // the text changed meanwhile
  edit.cm.setProblems(r.problems);
  list.replaceChildren(...r.problems.map((p) => el("li", { "data-line": p.line, text: `line ${p.line}:${p.column}: ${p.message}` })));
  $("editor-save").disabled = !r.valid;
}

async function previewNow() {
  $("preview-error").textContent = "";
  const out = $("preview-out");
  out.replaceChildren();
  let variables;
  try {
    variables = JSON.parse($("editor-vars").value || "{}");
  } catch (e) {
    $("preview-error").textContent = "Variables are not valid JSON: " + e.message;
    return;
  }
  try {
    const r = await api("POST", "/v1/admin/preview", { key: editorKey(), source: edit.cm.getValue(), variables });
    for (const m of r.messages) {
      out.append(el("div", { class: "msg-role", text: m.role }), el("pre", { class: "msg-content", text: m.content }));
    }
    if (r.model) out.append(el("p", { class: "muted small", text: "model " + r.model + (r.temperature !== null ? ", temperature " + r.temperature : "") }));
  } catch (e) {
    $("preview-error").textContent = e.message;
  }
}

async function saveDraft() {
  const key = editorKey();
  const branch = $("editor-branch").value.trim();
  if (!key || !branch) {
    toast("A draft needs a key and a branch name.", "error");
    return;
  }
  $("editor-save").disabled = true;
  try {
    const body = { source: edit.cm.getValue(), message: $("editor-message").value };
    if (edit.base) body.base = edit.base;
    const d = await api("PUT", promptPath(key, "/drafts/" + encodeURIComponent(branch)), body);
    edit.key = key;
    edit.base = d.commit; // the next save continues the same branch
    $("editor-key").disabled = true;
    const res = $("editor-result");
    res.replaceChildren(`Saved ${d.version} (commit ${shortSHA(d.commit)}). `,
      el("a", { href: "#/p/" + key + "?v=" + encodeURIComponent(d.version), text: "Open it" }),
      d.pull_request_url ? " · " : "", d.pull_request_url ? el("a", { href: d.pull_request_url, text: "Pull request", target: "_blank", rel: "noopener" }) : "");
    toast(`Saved ${d.version} on branch ${d.branch}`);
  } catch (e) {
    fail(e);
  } finally {
    $("editor-save").disabled = false;
  }
}

function wireEditor() {
  $("editor-preview").addEventListener("click", () => previewNow().catch(fail));
  $("editor-save").addEventListener("click", () => saveDraft().catch(fail));
  $("editor-key").addEventListener("input", scheduleValidate);
}

document.addEventListener("DOMContentLoaded", wireEditor);
