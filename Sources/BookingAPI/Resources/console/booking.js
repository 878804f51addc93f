// One booking: every field, its history (admins), and what may be done with it.
import { api, getJSON, problem, session } from "./api.js";
import { h, heading, table, cell, when, say, failure, confirmButton } from "./ui.js";
import { decisionForm, cancelButton, cancellable, icsLink, statusBadge } from "./bookings.js";

export async function render(root, route) {
  const title = heading(`Booking #${route.id}`);
  const body = h("div", {}, h("p", {}, "Loading…"));
  root.append(title, body);
  await load(body, title, route);
}

async function load(body, title, route) {
  const answer = await api(`/booking/${route.id}`);
  if (!answer.ok) {
    body.replaceChildren(h("p", { id: "booking-missing" }, answer.status === 404 ? "There is no such booking (it may have been deleted)." : "The booking could not be loaded; try again."));
    if (session.me.role === "admin") await showHistory(body, route.id);
    return;
  }
  const booking = await answer.json();
  title.textContent = `Booking #${booking.id}: ${booking.topic}`;
  const address = [booking.address.street, booking.address.city, booking.address.state, booking.address.country].filter(Boolean).join(", ");
  const facts = [
    ["Status", statusBadge(booking.status)],
    ["Event", when(booking.event_time)],
    ["Length", `${booking.duration_minutes} minutes`],
    ["Address", address],
    ["Contact", booking.requested_by],
    ["Submitted by", booking.submitted_by],
    ["Submitted", when(booking.created_at)],
    ["Decided by", booking.decided_by || "—"],
    ["Decided", when(booking.decided_at)],
    ["Note", booking.decision_note || "—"],
    ["Calendar", icsLink(booking)],
  ];
  const reload = () => load(body, title, route);
  const actions = h("div", { className: "actions" });
  if (session.me.role === "admin" && booking.status === "pending") actions.append(decisionForm(booking, reload));
  if (cancellable(booking)) actions.append(cancelButton(booking, reload));
  if (session.me.role === "admin") {
    actions.append(confirmButton("delete", "Delete", "Confirm delete", async () => {
      const answer = await api(`/booking/${booking.id}`, { method: "DELETE" });
      if (!answer.ok) { say(failure(await problem(answer), "The booking was not deleted.")); await reload(); return; }
      say(`Booking #${booking.id} “${booking.topic}” deleted.`);
      route.go("/queue?status=all", { keep: true });
    }, `Delete “${booking.topic}”`));
  }
  body.replaceChildren(
    h("dl", { className: "facts", id: "booking-facts" }, facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
    actions.childNodes.length ? h("section", { "aria-labelledby": "actions-title" }, h("h3", { id: "actions-title" }, "Actions"), actions) : null);
  if (session.me.role === "admin") await showHistory(body, booking.id);
}

async function showHistory(body, id) {
  const section = h("section", { "aria-labelledby": "history-title" }, h("h3", { id: "history-title" }, "History"));
  body.append(section);
  const found = await getJSON(`/booking/${id}/history`);
  if (!found) { section.append(h("p", {}, "No history.")); return; }
  const rows = found.history.map((event) => h("tr", {}, cell(when(event.at)), cell(event.action), cell(event.actor), cell(event.note || "—")));
  section.append(table("What happened to it, oldest first", ["When", "Action", "By", "Note"], rows, "history"));
}
