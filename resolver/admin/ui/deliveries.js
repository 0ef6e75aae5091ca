"use strict";
// Deliveries: the GitHub webhook inbox (state, attempts, next attempt, last
// error) with a Redeliver button. Loaded before app.js; uses its helpers
// ($, api, el, badge, when, toast, fail, confirmAction) only when called.

const deliveries = { cursor: null };

async function loadDeliveries(reset) {
  let path = "/v1/admin/deliveries?limit=50";
  const st = document.getElementById("deliveries-state").value;
  if (st) path += "&state=" + encodeURIComponent(st);
  if (!reset && deliveries.cursor) path += "&cursor=" + encodeURIComponent(deliveries.cursor);
  const page = await api("GET", path);
  const tb = $("deliveries");
  if (reset) tb.replaceChildren();
  for (const d of page.deliveries) {
    const note = d.state === "done" || d.state === "ignored" ? d.result : (d.last_error || d.result);
    const redo = el("button", { type: "button", class: "small", text: "Redeliver" });
    redo.disabled = d.state === "processing";
    redo.addEventListener("click", () => redeliver(d).catch(fail));
    tb.append(el("tr", { "data-id": d.id },
      el("td", { class: "mono", text: d.id }),
      el("td", { text: d.event + (d.action ? "." + d.action : "") }),
      el("td", { text: d.subject }),
      el("td", {}, badge(d.state, "delivery " + d.state)),
      el("td", { class: "num", text: d.attempts }),
      el("td", { class: "date", text: d.next_attempt_at ? when(d.next_attempt_at) : "" }),
      el("td", { class: "date", text: when(d.received_at) }),
      el("td", { class: "detail", text: note || "" }),
      el("td", {}, redo),
    ));
  }
  deliveries.cursor = page.next_cursor;
  $("deliveries-more").hidden = !page.next_cursor;
}

async function redeliver(d) {
  const ok = await confirmAction("Redeliver " + d.id + "?",
    "It is processed again; the promotion rules still apply (a merge is promoted at most once).", "Redeliver");
  if (!ok) return;
  await api("POST", "/v1/admin/deliveries/" + encodeURIComponent(d.id) + "/redeliver");
  toast("Delivery " + d.id + " is pending again");
  await loadDeliveries(true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("deliveries-state").addEventListener("change", () => loadDeliveries(true).catch(fail));
  $("deliveries-more").addEventListener("click", () => loadDeliveries(false).catch(fail));
});
