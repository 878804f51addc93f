// Calendar feeds: secret .ics URLs for calendar programs; the URL is shown once, a feed can be revoked.
import { api, json, problem, getJSON } from "./api.js";
import { h, heading, table, cell, when, say, failure, secretPanel, confirmButton, field, markFields, focusStatus } from "./ui.js";

export async function render(root) {
  const secret = h("div", { id: "feed-secret-place" });
  const list = h("div", { id: "feed-list" }, h("p", {}, "Loading…"));
  const reload = () => load(list);
  const form = h("form", { id: "new-feed", noValidate: true },
    field("feed-name", "Name", h("input", { autocomplete: "off", maxLength: 100 })),
    h("button", { type: "submit" }, "Create feed"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await api("/calendar-feeds", json({ name: form.querySelector("#feed-name").value.trim() }));
    const body = answer.ok ? await answer.json() : await problem(answer);
    if (!answer.ok) {
      const first = markFields(form, body.errors, (name) => `feed-${name}`);
      say(failure(body, "The feed was not created."));
      if (first) first.focus();
      return;
    }
    markFields(form, [], String);
    form.reset();
    await reload();
    say(`Feed “${body.name}” created.`);
    // Calendar programs need the whole address.
    secret.replaceChildren(secretPanel("feed-url", ["Subscription address of ", h("strong", {}, body.name), " (shown this once; anyone with it can read the feed):"], location.origin + body.url, "Copy address"));
    secret.querySelector("button").focus();
  });
  root.append(heading("Calendar feeds"), secret, list,
    h("section", { "aria-labelledby": "new-feed-title" }, h("h3", { id: "new-feed-title" }, "Create a feed"), form));
  await reload();
}

async function load(list) {
  const found = await getJSON("/calendar-feeds");
  if (!found) { list.replaceChildren(h("p", {}, "The feeds could not be loaded; try again.")); return; }
  const reload = () => load(list);
  const rows = found.feeds.map((feed) => h("tr", { id: `feed-${feed.id}` },
    cell(feed.name), cell(feed.created_by), cell(when(feed.created_at)),
    cell(confirmButton(`revoke-${feed.id}`, "Revoke", "Confirm revoke", async () => {
      const answer = await api(`/calendar-feeds/${feed.id}`, { method: "DELETE" });
      const outcome = answer.ok ? `Feed “${feed.name}” revoked; its address no longer works.` : failure(await problem(answer), "The feed was not revoked.");
      await reload();
      say(outcome);
      focusStatus();
    }, `Revoke feed “${feed.name}”`))));
  list.replaceChildren(rows.length ? table("Feeds (their addresses are not kept)", ["Name", "Created by", "Created", "Revoke"], rows, "feed-rows") : h("p", { id: "no-feeds" }, "No feeds."));
}
