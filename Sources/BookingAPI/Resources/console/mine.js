// A requester's own bookings (the API lists only theirs), newest first, with status and cancel.
import { getJSON } from "./api.js";
import { h, heading, table, cell, when, pager } from "./ui.js";
import { cancelButton, cancellable, icsLink, statusBadge } from "./bookings.js";

export async function render(root, route) {
  const list = h("div", {}, h("p", {}, "Loading…"));
  root.append(heading("My bookings"), h("p", {}, h("a", { href: "#/submit" }, "Request a booking")), list);
  await load(list, route);
}

async function load(list, route) {
  const cursor = route.query.get("cursor");
  const page = await getJSON(`/booking?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  if (!page) { list.replaceChildren(h("p", {}, "Your bookings could not be loaded; try again.")); return; }
  const reload = () => load(list, route);
  const rows = page.bookings.map((booking) => h("tr", { id: `booking-${booking.id}` },
    cell(h("a", { href: `#/booking/${booking.id}` }, when(booking.event_time))),
    cell(booking.topic),
    cell(statusBadge(booking.status)),
    cell(booking.decision_note || "—"),
    cell(cancellable(booking) ? cancelButton(booking, reload) : null, " ", icsLink(booking))));
  list.replaceChildren(
    rows.length ? table("Your bookings, newest request first", ["Event", "Topic", "Status", "Note", "Actions"], rows, "rows") : h("p", { id: "rows-empty" }, "You have not requested any bookings yet."),
    pager(cursor, page.next_cursor, (next) => route.go(next ? `/mine?cursor=${encodeURIComponent(next)}` : "/mine")));
}
