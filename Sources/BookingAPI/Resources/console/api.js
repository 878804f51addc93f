// Session and requests. The access token lives in this module's memory only; the refresh token is
// an HttpOnly cookie (POST /token with session=cookie) that scripts cannot read, so a reload signs
// in again through a cookie refresh and no token is ever kept in web storage.
let accessToken = null;
let renewal = null;
let onSignedOut = () => {};

export const session = { me: null };

const form = (fields) => new URLSearchParams(fields);

function keepFresh(body) {
  accessToken = body.access_token;
  clearTimeout(renewal);
  // Renew a minute before the access token runs out.
  renewal = setTimeout(refresh, Math.max(10, body.expires_in - 60) * 1000);
}

// One refresh at a time: a refresh token is spent on use, and presenting it twice (two requests
// meeting a 401 together) would look like theft and revoke the whole session.
let refreshing = null;
function refresh() {
  refreshing = refreshing || (async () => {
    const answer = await fetch("/token", { method: "POST", body: form({ grant_type: "refresh_token" }), credentials: "same-origin" });
    if (!answer.ok) return false;
    keepFresh(await answer.json());
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

function forget() {
  accessToken = null;
  session.me = null;
  clearTimeout(renewal);
}

/// Called when the server no longer accepts the session (expired, revoked, disabled).
export function whenSignedOut(callback) { onSignedOut = callback; }

/// Logs in; answers null on success, else the problem document.
export async function logIn(username, password) {
  const answer = await fetch("/token", {
    method: "POST", credentials: "same-origin",
    body: form({ username, password, session: "cookie" }),
  });
  if (!answer.ok) return problem(answer);
  keepFresh(await answer.json());
  return (await loadMe()) ? null : { detail: "Logging in failed." };
}

/// A reload: the readable booking_session marker (nothing secret) says a cookie refresh is worth trying.
export async function resume() {
  if (!document.cookie.split("; ").includes("booking_session=1")) return false;
  return (await refresh()) && loadMe();
}

async function loadMe() {
  const answer = await api("/me");
  if (!answer.ok) return false;
  session.me = await answer.json();
  return true;
}

/// Ends every session of the user on the server, then drops the cookie.
export async function logOut() {
  await api("/logout", { method: "POST" });
  await fetch("/token/revoke", { method: "POST", body: form({}), credentials: "same-origin" });
  forget();
}

/// A request with the bearer token; one refresh and retry on a 401.
export async function api(path, options = {}) {
  const send = () => fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${accessToken}` } });
  const sentWith = accessToken;
  let answer = await send();
  if (answer.status === 401 && accessToken !== null) {
    // Another request may have renewed the token meanwhile: then just try again with it.
    if (accessToken !== sentWith) return send();
    if (await refresh()) {
      answer = await send();
    } else {
      forget();
      onSignedOut();
    }
  }
  return answer;
}

export const json = (body, method = "POST") => ({ method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

/// The problem document of an error answer (an empty one when the body is not JSON).
export async function problem(answer) {
  return answer.json().catch(() => ({}));
}

/// GET a JSON document; null (and the problem said) when it fails.
export async function getJSON(path) {
  const answer = await api(path);
  if (answer.ok) return answer.json();
  return null;
}
