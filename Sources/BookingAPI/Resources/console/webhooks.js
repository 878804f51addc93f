// Webhook subscriptions: create (secret shown once), disable/enable, rotate, ping, delete; deliveries.
import { api, json, problem, getJSON } from "./api.js";
import { h, heading, table, cell, when, say, failure, secretPanel, confirmButton, field, markFields, pager, focusStatus } from "./ui.js";

const eventTypes = ["booking.submitted", "booking.accepted", "booking.rejected", "booking.cancelled", "booking.expired", "booking.deleted", "user.created", "user.updated"];

async function act(path, options, done, after) {
  const answer = await api(path, options);
  const body = answer.ok ? await answer.json().catch(() => ({})) : await problem(answer);
  if (after) await after(answer.ok ? body : null);
  say(answer.ok ? done : failure(body, "That did not work."));
  return answer.ok ? body : null;
}

function secretShown(place, id, secret) {
  place.replaceChildren(secretPanel("webhook-secret", [`Signing secret of webhook #${id} (shown this once; verify signatures with it):`], secret, "Copy secret"));
  place.querySelector("button").focus();
}

export async function renderList(root) {
  const secret = h("div", { id: "webhook-secret-place" });
  const list = h("div", { id: "webhook-list" }, h("p", {}, "Loading…"));
  const reload = () => load(list, secret);
  root.append(heading("Webhooks"), secret, list, createForm(secret, reload));
  await reload();
}

async function load(list, secret) {
  const found = await getJSON("/webhooks");
  if (!found) { list.replaceChildren(h("p", {}, "The webhooks could not be loaded; try again.")); return; }
  const reload = () => load(list, secret);
  const rows = found.webhooks.map((hook) => h("tr", { id: `webhook-${hook.id}` },
    cell(h("a", { href: `#/webhooks/${hook.id}` }, `#${hook.id}`)),
    cell(h("span", { className: "url" }, hook.url)),
    cell(hook.events.join(", ")),
    cell(hook.description || "—"),
    cell(hook.disabled ? `disabled${hook.disabled_reason === "gone" ? " (receiver answered 410)" : ""}` : "enabled"),
    cell(h("div", { className: "inline" },
      h("button", { type: "button", className: "secondary", id: `toggle-webhook-${hook.id}`, "aria-label": `${hook.disabled ? "Enable" : "Disable"} webhook #${hook.id}`,
        onclick: () => act(`/webhooks/${hook.id}`, json({ disabled: !hook.disabled }, "PATCH"), `Webhook #${hook.id} ${hook.disabled ? "enabled" : "disabled"}.`, reload).then(focusStatus) },
      hook.disabled ? "Enable" : "Disable"),
      h("button", { type: "button", className: "secondary", id: `rotate-${hook.id}`, "aria-label": `Rotate the secret of webhook #${hook.id}`,
        onclick: () => act(`/webhooks/${hook.id}/secret`, { method: "POST" }, `New secret for webhook #${hook.id}; the old one keeps signing for 24 hours.`, (body) => body && secretShown(secret, hook.id, body.secret)) },
      "Rotate secret"),
      h("button", { type: "button", className: "secondary", id: `ping-${hook.id}`, "aria-label": `Ping webhook #${hook.id}`,
        onclick: () => act(`/webhooks/${hook.id}/ping`, { method: "POST" }, `Ping sent to webhook #${hook.id}; see its deliveries.`) },
      "Ping"),
      confirmButton(`delete-webhook-${hook.id}`, "Delete", "Confirm delete",
        () => act(`/webhooks/${hook.id}`, { method: "DELETE" }, `Webhook #${hook.id} deleted.`, reload).then(focusStatus), `Delete webhook #${hook.id}`)))));
  list.replaceChildren(rows.length ? table("Subscriptions", ["Id", "URL", "Events", "Description", "State", "Actions"], rows, "webhook-rows") : h("p", {}, "No webhooks yet."));
}

function createForm(secret, reload) {
  const all = h("input", { type: "checkbox", id: "wh-all", value: "*" });
  const boxes = eventTypes.map((type) => h("input", { type: "checkbox", value: type, id: `wh-${type.replace(".", "-")}` }));
  const events = h("fieldset", { id: "wh-events", "aria-describedby": "e-wh-events" },
    h("legend", {}, "Events"),
    h("div", { className: "check" }, all, h("label", { htmlFor: "wh-all" }, "All events (*)")),
    boxes.map((box) => h("div", { className: "check" }, box, h("label", { htmlFor: box.id }, box.value))),
    h("p", { className: "error", id: "e-wh-events" }));
  const form = h("form", { id: "new-webhook", noValidate: true },
    field("wh-url", "Receiver URL (https)", h("input", { type: "url" })),
    events,
    field("wh-description", "Description (optional)", h("input", { autocomplete: "off", maxLength: 500 })),
    h("button", { type: "submit" }, "Add webhook"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = all.checked ? ["*"] : boxes.filter((box) => box.checked).map((box) => box.value);
    const description = form.querySelector("#wh-description").value.trim();
    const answer = await api("/webhooks", json({ url: form.querySelector("#wh-url").value.trim(), events: chosen, description: description || null }));
    const body = answer.ok ? await answer.json() : await problem(answer);
    if (!answer.ok) {
      const first = markFields(form, body.errors, (name) => (name.startsWith("events") ? "wh-events" : `wh-${name}`));
      say(failure(body, "The webhook was not added."));
      if (first) first.focus();
      return;
    }
    markFields(form, [], String);
    form.reset();
    await reload();
    say(`Webhook #${body.id} added.`);
    secretShown(secret, body.id, body.secret);
  });
  return h("section", { "aria-labelledby": "new-webhook-title" }, h("h3", { id: "new-webhook-title" }, "Add a webhook"), form);
}

export async function renderOne(root, route) {
  const title = heading(`Webhook #${route.id}`);
  const about = h("div", {});
  const list = h("div", { id: "delivery-list" }, h("p", {}, "Loading…"));
  const cursor = route.query.get("cursor");
  const reload = () => loadDeliveries(list, route, cursor);
  const actions = h("p", { className: "inline" },
    h("a", { href: "#/webhooks" }, "All webhooks"), " ",
    h("button", { type: "button", id: "ping", className: "secondary", onclick: () => act(`/webhooks/${route.id}/ping`, { method: "POST" }, "Ping sent.", reload) }, "Ping"), " ",
    h("button", { type: "button", id: "refresh-deliveries", className: "secondary", onclick: async () => { await reload(); say("Deliveries refreshed."); } }, "Refresh"));
  root.append(title, about, actions, h("h3", {}, "Deliveries"), list);
  const hook = await getJSON(`/webhooks/${route.id}`);
  if (!hook) { about.replaceChildren(h("p", {}, "There is no such webhook.")); list.replaceChildren(); return; }
  about.replaceChildren(h("dl", { className: "facts" },
    h("dt", {}, "URL"), h("dd", { className: "url" }, hook.url),
    h("dt", {}, "Events"), h("dd", {}, hook.events.join(", ")),
    h("dt", {}, "State"), h("dd", {}, hook.disabled ? "disabled" : "enabled"),
    h("dt", {}, "Created"), h("dd", {}, `${when(hook.created_at)} by ${hook.created_by}`)));
  await reload();
}

async function loadDeliveries(list, route, cursor) {
  const page = await getJSON(`/webhooks/${route.id}/deliveries?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  if (!page) { list.replaceChildren(h("p", {}, "The deliveries could not be loaded; try again.")); return; }
  const reload = () => loadDeliveries(list, route, cursor);
  const rows = page.deliveries.map((delivery) => h("tr", { id: `delivery-${delivery.id}` },
    cell(when(delivery.created_at)), cell(delivery.type), cell(delivery.state), cell(String(delivery.attempts)),
    cell(delivery.last_status ? String(delivery.last_status) : delivery.last_error || "—"),
    cell(when(delivery.last_attempt_at)), cell(when(delivery.next_attempt_at)),
    cell(h("button", { type: "button", className: "secondary", id: `retry-${delivery.id}`, "aria-label": `Retry delivery ${delivery.id} (${delivery.type})`,
      onclick: () => act(`/webhooks/${route.id}/deliveries/${delivery.id}/retry`, { method: "POST" }, `Delivery ${delivery.id} is sent again now.`, reload).then(focusStatus) }, "Retry"))));
  list.replaceChildren(
    rows.length ? table("Deliveries, newest first", ["Created", "Event", "State", "Attempts", "Last answer", "Last attempt", "Next attempt", "Retry"], rows, "delivery-rows") : h("p", { id: "no-deliveries" }, "Nothing sent yet."),
    pager(cursor, page.next_cursor, (next) => route.go(next ? `/webhooks/${route.id}?cursor=${encodeURIComponent(next)}` : `/webhooks/${route.id}`)));
}
