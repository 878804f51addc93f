// Request a booking: the calendar's busy times shown first, each invalid field marked from the 422.
import { api, json, problem, getJSON } from "./api.js";
import { h, heading, field, markFields, say, failure, when } from "./ui.js";

const fields = [
  ["f-topic", "Topic", {}],
  ["f-event_time", "Starts (your local time)", { type: "datetime-local" }],
  ["f-duration_minutes", "Duration in minutes", { type: "number", inputMode: "numeric", value: "60", min: "1", max: "1440" }],
  ["f-address-street", "Street", {}],
  ["f-address-city", "City", {}],
  ["f-address-state", "State or region (optional)", {}],
  ["f-address-country", "Country", {}],
  ["f-requested_by", "Contact e-mail", { type: "email", autocomplete: "email" }],
];

export async function render(root, route) {
  const form = h("form", { id: "submit", noValidate: true },
    fields.map(([id, text, properties]) => field(id, text, h("input", { name: id.slice(2), ...properties }))),
    h("button", { type: "submit" }, "Submit request"));
  const busy = h("div", { id: "availability-list" });
  const availability = h("section", { id: "availability", "aria-labelledby": "availability-title" },
    h("h3", { id: "availability-title" }, "When the calendar is busy"),
    h("p", { id: "availability-range" }), busy);
  root.append(heading("Request a booking"), h("div", { className: "columns" }, availability, form));

  const value = (id) => form.querySelector(`#${id}`).value.trim();
  const refresh = () => showBusy(value("f-event_time"), Number(value("f-duration_minutes")));
  form.querySelector("#f-event_time").addEventListener("change", refresh);
  form.querySelector("#f-duration_minutes").addEventListener("change", refresh);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const local = value("f-event_time");
    const body = {
      topic: value("f-topic"),
      // datetime-local has no offset: send the instant it means here, in UTC.
      event_time: local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : "",
      duration_minutes: Number(value("f-duration_minutes")),
      address: { street: value("f-address-street"), city: value("f-address-city"), state: value("f-address-state") || null, country: value("f-address-country") },
      requested_by: value("f-requested_by"),
    };
    const answer = await api("/booking", json(body));
    if (answer.ok) {
      const created = await answer.json();
      markFields(form, [], String);
      say(`Booking “${created.topic}” submitted; it is pending.`);
      route.go("/mine", { keep: true });
      return;
    }
    const details = await problem(answer);
    const first = markFields(form, details.errors, (name) => `f-${name.replaceAll(".", "-")}`);
    say(failure(details, "The booking was not submitted."));
    if (first) first.focus();
  });
  await showBusy("", 0);
}

/// Busy ranges for the chosen day (and whether the chosen time meets one), or for the next 14 days.
async function showBusy(local, minutes) {
  const range = document.getElementById("availability-range");
  const list = document.getElementById("availability-list");
  let from;
  let to;
  const start = local ? new Date(local) : null;
  if (start && !Number.isNaN(start.getTime())) {
    from = new Date(start); from.setHours(0, 0, 0, 0);
    to = new Date(from); to.setDate(to.getDate() + 1);
    range.textContent = `On ${from.toLocaleDateString(undefined, { dateStyle: "full" })}:`;
  } else {
    from = new Date();
    to = new Date(from.getTime() + 14 * 24 * 3600 * 1000);
    range.textContent = "In the next 14 days (pick a start time to see that day):";
  }
  const found = await getJSON(`/availability?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`);
  if (!range.isConnected) return;
  if (!found) { list.replaceChildren(h("p", {}, "The calendar could not be loaded.")); return; }
  if (!found.busy.length) { list.replaceChildren(h("p", { id: "availability-free" }, "Nothing is booked then.")); return; }
  const end = start && minutes > 0 ? new Date(start.getTime() + minutes * 60000) : null;
  const clash = end && found.busy.some((b) => new Date(b.start) < end && start < new Date(b.end));
  list.replaceChildren(
    h("ul", {}, found.busy.map((b) => h("li", {}, `${when(b.start)} – ${sameDay(b.start, b.end) ? new Date(b.end).toLocaleTimeString(undefined, { timeStyle: "short" }) : when(b.end)}`))),
    clash ? h("p", { className: "warning", id: "availability-clash" }, "Your chosen time overlaps a busy time; it may not be accepted.") : null);
}

const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();
