// promptvault dashboard: the Webhooks page (outbound publish events).
// Loaded before app.js and called from its router (loadWebhooks); it uses
// app.js's helpers ($, api, el, badge, when, toast, fail, confirmAction)
// only when called, after both files have run. Server data goes into the
// page as text only.
"use strict";

const wh = {
  wired: false,
  types: [],       // event types the server offers
  logID: null,     // endpoint whose delivery log is open
  logCursor: null,
};

async function loadWebhooks() {
  if (!wh.wired) wireWebhooks();
  const data = await api("GET", "/v1/admin/webhooks");
  if (wh.types.length === 0) {
    wh.types = data.event_types;
    $("wh-events").append(...wh.types.map((t) =>
      el("label", {}, el("input", { type: "checkbox", value: t, "data-event": t }), " " + t)));
  }
  renderWebhooks(data.webhooks);
  if (wh.logID && data.webhooks.some((h) => h.id === wh.logID)) await whLoadDeliveries(true);
  else $("wh-log").hidden = true;
}

function webhookStatus(h) {
  if (h.failing) return badge("failing since " + when(h.failing_since), "invalid", "A delivery ran out of retries and none has succeeded since");
  if (h.failing_since) return badge("retrying", "staging", "Failing since " + when(h.failing_since));
  if (h.last_success_at) return badge("ok", "live", "Last success " + when(h.last_success_at));
  return "";
}

function renderWebhooks(hooks) {
  $("wh-empty").hidden = hooks.length > 0;
  $("wh-list").replaceChildren(...hooks.map((h) => el("tr", { "data-webhook": h.id },
    el("td", {}, el("code", { text: h.id })),
    el("td", { class: "wh-url", text: h.url }),
    el("td", { text: h.format }),
    el("td", { text: h.events.length ? h.events.join(", ") : "all" }),
    el("td", { class: "num", text: String(h.pending) }),
    el("td", {}, webhookStatus(h)),
    el("td", { text: h.description }),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "small", text: "Test", onclick: () => pingWebhook(h) }),
      el("button", { type: "button", class: "small", text: "Deliveries", onclick: () => { wh.logID = h.id; whLoadDeliveries(true).catch(fail); } }),
      el("button", { type: "button", class: "small danger", text: "Remove", onclick: () => removeWebhook(h) })),
  )));
}

async function addWebhook(ev) {
  ev.preventDefault();
  const events = [...document.querySelectorAll("#wh-events input:checked")].map((i) => i.value);
  const body = { url: $("wh-url").value.trim(), format: $("wh-format").value, description: $("wh-description").value };
  if (events.length) body.events = events;
  $("wh-add").disabled = true;
  try {
    const h = await api("POST", "/v1/admin/webhooks", body);
    $("wh-secret-id").textContent = h.id;
    $("wh-secret-value").textContent = h.secret;
    $("wh-secret").hidden = false;
    $("wh-form").reset();
    toast("Added " + h.id);
    await loadWebhooks();
  } catch (e) { fail(e); } finally { $("wh-add").disabled = false; }
}

function hookPath(id, rest) { return "/v1/admin/webhooks/" + encodeURIComponent(id) + (rest || ""); }

async function pingWebhook(h) {
  try {
    await api("POST", hookPath(h.id, "/test"));
    toast("Ping queued for " + h.id);
    wh.logID = h.id;
    setTimeout(() => whLoadDeliveries(true).catch(fail), 500);
  } catch (e) { fail(e); }
}

async function removeWebhook(h) {
  if (!await confirmAction("Remove endpoint?", `${h.url} gets no more events; its queue and delivery log are deleted.`, "Remove")) return;
  try {
    await api("DELETE", hookPath(h.id));
    toast("Removed " + h.id);
    if (wh.logID === h.id) wh.logID = null;
    await loadWebhooks();
  } catch (e) { fail(e); }
}

async function whLoadDeliveries(reset) {
  let path = hookPath(wh.logID, "/deliveries?limit=50");
  if (!reset && wh.logCursor) path += "&cursor=" + encodeURIComponent(wh.logCursor);
  const page = await api("GET", path);
  wh.logCursor = page.next_cursor;
  $("wh-log").hidden = false;
  $("wh-log-id").textContent = wh.logID;
  $("wh-log-more").hidden = !page.next_cursor;
  const rows = page.deliveries.map((d) => el("tr", { "data-delivery": String(d.id) },
    el("td", { class: "num", text: String(d.id) }),
    el("td", { title: d.event_id, text: d.event_type }),
    el("td", { text: d.key || "" }),
    el("td", {}, badge(d.state, d.state === "delivered" ? "live" : d.state === "failed" ? "invalid" : "staging")),
    el("td", { class: "num", text: String(d.attempts) }),
    el("td", { text: d.status_code ? String(d.status_code) : "" }),
    el("td", { text: d.attempts ? d.duration_ms + " ms" : "" }),
    el("td", { text: when(d.last_attempt_at) }),
    el("td", { text: d.state === "pending" ? when(d.next_attempt_at) : "" }),
    el("td", { class: "wh-error", text: d.error || "" }),
    el("td", { class: "actions" }, d.state === "pending" ? null :
      el("button", { type: "button", class: "small", text: "Redeliver", onclick: () => whRedeliver(d) })),
  ));
  if (reset) $("wh-deliveries").replaceChildren(...rows);
  else $("wh-deliveries").append(...rows);
}

async function whRedeliver(d) {
  try {
    await api("POST", hookPath(wh.logID, "/deliveries/" + d.id + "/redeliver"));
    toast(`Delivery ${d.id} queued again (same webhook-id)`);
    setTimeout(() => whLoadDeliveries(true).catch(fail), 500);
  } catch (e) { fail(e); }
}

function wireWebhooks() {
  wh.wired = true;
  $("wh-form").addEventListener("submit", addWebhook);
  $("wh-log-refresh").addEventListener("click", () => whLoadDeliveries(true).catch(fail));
  $("wh-log-more").addEventListener("click", () => whLoadDeliveries(false).catch(fail));
}
