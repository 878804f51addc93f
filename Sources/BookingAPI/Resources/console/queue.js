// The admin's queue: bookings by status (pending first), optionally within dates, oldest event first.
import { getJSON } from "./api.js";
import { h, heading, table, cell, when, pager } from "./ui.js";
import { decisionForm, cancelButton, cancellable, icsLink, statusBadge } from "./bookings.js";

const statuses = ["pending", "accepted", "rejected", "cancelled", "expired", "all"];
// A day picked in a date field means that whole local day.
const dayStart = (date) => new Date(`${date}T00:00`).toISOString();
const dayAfter = (date) => { const day = new Date(`${date}T00:00`); day.setDate(day.getDate() + 1); return day.toISOString(); };

export async function render(root, route) {
  const status = statuses.includes(route.query.get("status")) ? route.query.get("status") : "pending";
  const from = route.query.get("from") || "";
  const to = route.query.get("to") || "";
  const cursor = route.query.get("cursor");
  // Page size: 25 unless the address asks for another (1–200, as the API allows).
  const asked = Number(route.query.get("limit"));
  const limit = Number.isInteger(asked) && asked >= 1 && asked <= 200 ? String(asked) : "";
  const hashFor = (changes) => {
    const next = new URLSearchParams({ status, from, to, limit, ...changes });
    for (const [key, value] of [...next]) if (!value) next.delete(key);
    return `/queue?${next}`;
  };

  const statusField = h("select", { id: "q-status", name: "status" }, statuses.map((s) => h("option", { value: s, selected: s === status }, s)));
  const fromField = h("input", { id: "q-from", type: "date", value: from });
  const toField = h("input", { id: "q-to", type: "date", value: to });
  const filters = h("form", { id: "queue-filters", className: "filters" },
    h("div", {}, h("label", { htmlFor: "q-status" }, "Status"), statusField),
    h("div", {}, h("label", { htmlFor: "q-from" }, "Event from"), fromField),
    h("div", {}, h("label", { htmlFor: "q-to" }, "Event to"), toField),
    h("button", { type: "submit" }, "Show"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    route.go(hashFor({ status: statusField.value, from: fromField.value, to: toField.value, cursor: "" }));
  });
  const list = h("div", { id: "queue-list" }, h("p", {}, "Loading…"));
  root.append(heading("Queue"), filters, list);
  await load(list, route, { status, from, to, limit, cursor, hashFor });
}

async function load(list, route, { status, from, to, limit, cursor, hashFor }) {
  // Oldest event first (ties by id), keyset-paged in that order.
  const query = new URLSearchParams({ limit: limit || "25", order: "event_time" });
  if (status !== "all") query.set("status", status);
  if (from) query.set("from", dayStart(from));
  if (to) query.set("to", dayAfter(to));
  if (cursor) query.set("cursor", cursor);
  const page = await getJSON(`/booking?${query}`);
  if (!page) { list.replaceChildren(h("p", {}, "The bookings could not be loaded; try again.")); return; }
  const reload = () => load(list, route, { status, from, to, limit, cursor, hashFor });
  const rows = page.bookings.map((booking) => h("tr", { id: `booking-${booking.id}` },
    cell(h("a", { href: `#/booking/${booking.id}` }, when(booking.event_time))),
    cell(booking.topic),
    cell(`${booking.duration_minutes} min`),
    cell(booking.requested_by),
    cell(statusBadge(booking.status)),
    cell(booking.status === "pending" ? decisionForm(booking, reload) : null,
      cancellable(booking) ? cancelButton(booking, reload) : null, " ", icsLink(booking))));
  const caption = `${status === "all" ? "All" : status[0].toUpperCase() + status.slice(1)} bookings, oldest event first`;
  list.replaceChildren(
    rows.length ? table(caption, ["Event", "Topic", "Length", "Contact", "Status", "Actions"], rows, "rows") : h("p", { id: "rows-empty" }, "No bookings match."),
    pager(cursor, page.next_cursor, (next) => route.go(hashFor({ cursor: next || "" }))));
}
