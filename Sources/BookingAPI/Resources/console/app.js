// The console uses the public API only. The access token lives in this module's memory; the
// refresh token is an HttpOnly cookie (POST /token with session=cookie) that scripts cannot read,
// so a reload signs in again through a cookie refresh and no token is kept in web storage.
let accessToken = null;

const $ = (id) => document.getElementById(id);
const form = (fields) => new URLSearchParams(fields);

function say(text) { $("status").textContent = text; }

async function tokenRequest(fields) {
  const answer = await fetch("/token", { method: "POST", body: form(fields), credentials: "same-origin" });
  if (!answer.ok) return null;
  const body = await answer.json();
  accessToken = body.access_token;
  // Renew a minute before the access token runs out.
  setTimeout(() => tokenRequest({ grant_type: "refresh_token" }), Math.max(10, body.expires_in - 60) * 1000);
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

async function showSignedIn() {
  const me = await (await api("/me")).json();
  $("who").textContent = `Signed in as ${me.username} (${me.role})`;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("login").hidden = true;
  $("bookings-title").textContent = me.role === "admin" ? "Pending bookings" : "Your bookings";
  const query = me.role === "admin" ? "?status=pending&limit=50" : "?limit=50";
  const answer = await api(`/booking${query}`);
  if (!answer.ok) { say("The bookings could not be loaded; try again."); return; }
  const rows = $("rows");
  rows.replaceChildren();
  for (const booking of (await answer.json()).bookings) {
    const row = document.createElement("tr");
    for (const text of [new Date(booking.event_time).toLocaleString(), booking.topic, booking.status]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    rows.append(row);
  }
  $("bookings").hidden = false;
}

function showLogin() {
  accessToken = null;
  for (const id of ["who", "logout", "bookings"]) $(id).hidden = true;
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
    const problem = await answer.json().catch(() => ({}));
    say(problem.detail || "Logging in failed.");
    return;
  }
  const body = await answer.json();
  accessToken = body.access_token;
  setTimeout(() => tokenRequest({ grant_type: "refresh_token" }), Math.max(10, body.expires_in - 60) * 1000);
  await showSignedIn();
});

$("logout").addEventListener("click", async () => {
  // Ends every session of the user on the server, then drops the cookie.
  await api("/logout", { method: "POST" });
  await fetch("/token/revoke", { method: "POST", body: form({}), credentials: "same-origin" });
  say("You are logged out.");
  showLogin();
});

// booking_session (not secret, readable) says whether the HttpOnly refresh cookie is there.
const hasSession = document.cookie.split("; ").includes("booking_session=1");
if (hasSession && (await tokenRequest({ grant_type: "refresh_token" }))) await showSignedIn(); else showLogin();
