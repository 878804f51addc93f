// What the queue, a requester's list and a booking's page share: decisions, cancel, the .ics.
import { api, json, problem } from "./api.js";
import { h, say, failure, focusStatus } from "./ui.js";

const done = { accept: "accepted", reject: "rejected" };

// Actions answer what to say; callers say it once the page shows the new state.

/// Accept or reject. An overlap's 409 names the booking in the way, with a link to it.
export async function decide(booking, action, note) {
  const body = { id: booking.id };
  if (note) body.note = note;
  const answer = await api(`/booking/${action}`, json(body));
  if (answer.ok) return [`Booking “${booking.topic}” ${done[action]}.`];
  const details = await problem(answer);
  if (details.conflicting_id === undefined) return [failure(details, "That did not work.")];
  const other = details.conflicting_id;
  return [`Not accepted: it overlaps accepted booking #${other}.`,
    h("a", { href: `#/booking/${other}`, id: "conflict-link" }, `Show booking #${other}`)];
}

export async function cancel(booking) {
  const answer = await api(`/booking/${booking.id}/cancel`, { method: "POST" });
  return [answer.ok ? `Booking “${booking.topic}” cancelled.` : failure(await problem(answer), "That did not work.")];
}

async function then(outcome, after) {
  await after();
  say(...outcome);
  focusStatus();
}

export const cancellable = (booking) => booking.status === "pending" || booking.status === "accepted";

/// The .ics needs the bearer token: fetch it and hand the browser a download.
export function icsLink(booking) {
  const link = h("a", { href: `/booking/${booking.id}/calendar.ics`, className: "ics", "aria-label": `Calendar file for “${booking.topic}”` }, "Calendar file");
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const answer = await api(link.href);
    if (!answer.ok) { say("The calendar file could not be loaded."); return; }
    const url = URL.createObjectURL(await answer.blob());
    h("a", { href: url, download: `booking-${booking.id}.ics` }).click();
    URL.revokeObjectURL(url);
  });
  return link;
}

/// A note field with Accept and Reject buttons, for a pending booking.
export function decisionForm(booking, after) {
  const note = h("input", { id: `note-${booking.id}`, maxLength: 2000, autocomplete: "off" });
  const buttons = ["accept", "reject"].map((action) => {
    const text = action === "accept" ? "Accept" : "Reject";
    return h("button", {
      type: "button", id: `${action}-${booking.id}`, className: action === "reject" ? "danger" : undefined,
      "aria-label": `${text} “${booking.topic}”`,
      onclick: async () => then(await decide(booking, action, note.value.trim()), after),
    }, text);
  });
  return h("div", { className: "decision" }, h("label", { htmlFor: note.id }, "Note"), note, ...buttons);
}

export function cancelButton(booking, after) {
  return h("button", {
    type: "button", id: `cancel-${booking.id}`, className: "secondary", "aria-label": `Cancel “${booking.topic}”`,
    onclick: async () => then(await cancel(booking), after),
  }, "Cancel");
}

export const statusBadge = (status) => h("span", { className: `badge ${status}` }, status);
