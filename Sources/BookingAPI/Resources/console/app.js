// The console uses the public API only. The access token lives in this module's memory; the
// refresh token is an HttpOnly cookie (POST /token with session=cookie) that scripts cannot read,
// so a reload signs in again through a cookie refresh and no token is kept in web storage.
let accessToken = null;
let me = null;

const $ = (id) => document.getElementById(id);
const form = (fields) => new URLSearchParams(fields);
const element = (tag, text) => Object.assign(document.createElement(tag), text === undefined ? {} : { textContent: text });

function say(text) { $("status").textContent = text; }

function keepFresh(body) {
  accessToken = body.access_token;
  // Renew a minute before the access token runs out.
  setTimeout(() => tokenRequest({ grant_type: "refresh_token" }), Math.max(10, body.expires_in - 60) * 1000);
}

async function tokenRequest(fields) {
  const answer = await fetch("/token", { method: "POST", body: form(fields), credentials: "same-origin" });
  if (!answer.ok) return null;
  const body = await answer.json();
  keepFresh(body);
  return body;
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${accessToken}`, ...(options.headers || {}) };
  let answer = await fetch(path, { ...options, headers });
  if (answer.status === 401 && (await tokenRequest({ grant_type: "refresh_token" }))) {
    answer = await fetch(path, { ...options, headers: { ...headers, Authorization: `Bearer ${accessToken}` } });
  }
  return answer;
}

const json = (body) => ({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

async function problemText(answer) {
  const problem = await answer.json().catch(() => ({}));
  return problem;
}

async function decide(booking, action, note) {
  const body = { id: booking.id };
  if (note) body.note = note;
  const answer = await api(`/booking/${action}`, json(body));
  if (answer.ok) {
    say(`Booking “${booking.topic}” ${action === "accept" ? "accepted" : "rejected"}.`);
  } else {
    const problem = await problemText(answer);
    if (problem.conflicting_id !== undefined) {
      say(`Not accepted: it overlaps accepted booking #${problem.conflicting_id}.`);
      const link = element("a", `Show booking #${problem.conflicting_id}`);
      link.href = `#booking-${problem.conflicting_id}`;
      link.id = "conflict-link";
      $("status").append(" ", link);
    } else {
      say(problem.detail || "That did not work.");
    }
  }
  await showBookings();
}

async function cancel(booking) {
  const answer = await api(`/booking/${booking.id}/cancel`, { method: "POST" });
  say(answer.ok ? `Booking “${booking.topic}” cancelled.` : (await problemText(answer)).detail || "That did not work.");
  await showBookings();
}

function actionsFor(booking) {
  const cell = element("td");
  if (me.role === "admin" && booking.status === "pending") {
    const decision = element("form");
    const label = element("label", "Note");
    label.htmlFor = `note-${booking.id}`;
    const note = element("input");
    note.id = `note-${booking.id}`;
    for (const action of ["accept", "reject"]) {
      const button = element("button", action === "accept" ? "Accept" : "Reject");
      button.type = "button";
      button.id = `${action}-${booking.id}`;
      button.setAttribute("aria-label", `${button.textContent} “${booking.topic}”`);
      button.addEventListener("click", () => decide(booking, action, note.value.trim()));
      decision.append(button);
    }
    decision.prepend(label, note);
    cell.append(decision);
  }
  if (booking.status === "pending" || booking.status === "accepted") {
    const button = element("button", "Cancel");
    button.type = "button";
    button.id = `cancel-${booking.id}`;
    button.setAttribute("aria-label", `Cancel “${booking.topic}”`);
    button.addEventListener("click", () => cancel(booking));
    cell.append(button);
  }
  const ics = element("a", "Calendar file");
  ics.href = `/booking/${booking.id}/calendar.ics`;
  ics.addEventListener("click", async (event) => {
    // The .ics needs the bearer token: fetch it and hand the browser a download.
    event.preventDefault();
    const answer = await api(ics.href);
    if (!answer.ok) { say("The calendar file could not be loaded."); return; }
    const url = URL.createObjectURL(await answer.blob());
    const download = Object.assign(element("a"), { href: url, download: `booking-${booking.id}.ics` });
    download.click();
    URL.revokeObjectURL(url);
  });
  cell.append(" ", ics);
  return cell;
}

async function showBookings() {
  // Admins work the queue of pending bookings; requesters follow their own (every status).
  const query = me.role === "admin" ? "?status=pending&limit=50" : "?limit=50";
  const answer = await api(`/booking${query}`);
  if (!answer.ok) { say("The bookings could not be loaded; try again."); return; }
  const rows = $("rows");
  rows.replaceChildren();
  const bookings = (await answer.json()).bookings;
  if (me.role === "admin") {
    // The accepted ones too, so that an overlap's link has a row to go to.
    const accepted = await api("/booking?status=accepted&limit=50");
    if (accepted.ok) bookings.push(...(await accepted.json()).bookings);
  }
  bookings.sort((a, b) => a.event_time.localeCompare(b.event_time));
  for (const booking of bookings) {
    const row = element("tr");
    row.id = `booking-${booking.id}`;
    for (const text of [new Date(booking.event_time).toLocaleString(), booking.topic, booking.status]) row.append(element("td", text));
    row.append(actionsFor(booking));
    rows.append(row);
  }
  $("bookings").hidden = false;
}

async function showSignedIn() {
  me = await (await api("/me")).json();
  $("who").textContent = `Signed in as ${me.username} (${me.role})`;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("login").hidden = true;
  $("submit").hidden = false;
  $("users").hidden = me.role !== "admin";
  $("bookings-title").textContent = me.role === "admin" ? "Pending and accepted bookings" : "Your bookings";
  await showBookings();
}

function showLogin() {
  accessToken = null;
  me = null;
  for (const id of ["who", "logout", "bookings", "submit", "users", "new-password"]) $(id).hidden = true;
  $("login").hidden = false;
  $("username").focus();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  const answer = await fetch("/token", {
    method: "POST", credentials: "same-origin",
    body: form({ username: $("username").value, password: $("password").value, session: "cookie" }),
  });
  $("password").value = "";
  if (!answer.ok) {
    say((await problemText(answer)).detail || "Logging in failed.");
    return;
  }
  keepFresh(await answer.json());
  await showSignedIn();
});

function clearFieldErrors() {
  for (const input of $("submit").querySelectorAll("input")) input.removeAttribute("aria-invalid");
  for (const message of $("submit").querySelectorAll(".error")) message.textContent = "";
}

$("submit").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors();
  const value = (id) => $(id).value.trim();
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
    say(`Booking “${body.topic}” submitted; it is pending.`);
    $("submit").reset();
    await showBookings();
    return;
  }
  const problem = await problemText(answer);
  // Each invalid field is marked where it is, with the server's message beside it.
  let first = null;
  for (const error of problem.errors || []) {
    const id = error.field.replaceAll(".", "-");
    const input = $(`f-${id}`);
    const message = $(`e-${id}`);
    if (!input || !message) continue;
    input.setAttribute("aria-invalid", "true");
    message.textContent = error.message;
    first = first || input;
  }
  say(problem.detail || "The booking was not submitted.");
  if (first) first.focus();
});

$("new-user").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("u-username").removeAttribute("aria-invalid");
  $("e-u-username").textContent = "";
  $("new-password").hidden = true;
  // No password given: the server generates one and shows it in this answer only.
  const answer = await api("/users", json({ username: $("u-username").value.trim(), role: $("u-role").value }));
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const field = (body.errors || []).find((error) => error.field === "username");
    if (field || answer.status === 409) {
      $("u-username").setAttribute("aria-invalid", "true");
      $("e-u-username").textContent = field ? field.message : body.detail;
      $("u-username").focus();
    }
    say(body.detail || "The user was not added.");
    return;
  }
  $("new-password-user").textContent = body.username;
  $("new-password-value").textContent = body.password;
  $("new-password").hidden = false;
  $("new-user").reset();
  say(`User ${body.username} added; give them the one-time password.`);
  $("copy-password").focus();
});

$("copy-password").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("new-password-value").textContent);
    say("Password copied.");
  } catch {
    say("Copying is not allowed here; select the password and copy it by hand.");
  }
});

$("logout").addEventListener("click", async () => {
  // Ends every session of the user on the server, then drops the cookie.
  await api("/logout", { method: "POST" });
  await fetch("/token/revoke", { method: "POST", body: form({}), credentials: "same-origin" });
  $("new-password-value").textContent = "";
  say("You are logged out.");
  showLogin();
});

// booking_session (not secret, readable) says whether the HttpOnly refresh cookie is there.
const hasSession = document.cookie.split("; ").includes("booking_session=1");
if (hasSession && (await tokenRequest({ grant_type: "refresh_token" }))) await showSignedIn(); else showLogin();
