// The console: a small hash router over pages that each use the public API (see api.js for the
// session). Routes are "#/page/param?query"; each page is a module with render(root, route).
import { session, logIn, logOut, resume, whenSignedOut } from "./api.js";
import { $, h, say, failure } from "./ui.js";
import * as queue from "./queue.js";
import * as booking from "./booking.js";
import * as users from "./users.js";
import * as webhooks from "./webhooks.js";
import * as feeds from "./feeds.js";
import * as submit from "./submit.js";
import * as mine from "./mine.js";

const admin = ["admin"];
const everyone = ["admin", "requester"];
const routes = [
  { path: "/queue", page: queue.render, roles: admin, nav: "Queue" },
  { path: "/booking/:id", page: booking.render, roles: everyone, under: { admin: "/queue", requester: "/mine" } },
  { path: "/users", page: users.render, roles: admin, nav: "Users" },
  { path: "/webhooks", page: webhooks.renderList, roles: admin, nav: "Webhooks" },
  { path: "/webhooks/:id", page: webhooks.renderOne, roles: admin, under: { admin: "/webhooks" } },
  { path: "/feeds", page: feeds.render, roles: admin, nav: "Calendar feeds" },
  { path: "/submit", page: submit.render, roles: everyone, nav: "Request a booking", navRoles: ["requester"] },
  { path: "/mine", page: mine.render, roles: everyone, nav: "My bookings", navRoles: ["requester"] },
];
const home = () => (session.me.role === "admin" ? "/queue" : "/mine");
let keepStatus = false;

function match(path) {
  for (const route of routes) {
    const pattern = new RegExp(`^${route.path.replace(/:\w+/g, "(\\d+)")}$`);
    const found = path.match(pattern);
    if (found) return { route, id: found[1] ? Number(found[1]) : undefined };
  }
  return null;
}

/// Goes to a page; `keep` leaves the current status line (e.g. "deleted") in place.
export function go(path, { keep = false } = {}) {
  keepStatus = keep;
  if (location.hash === `#${path}`) show(); else location.hash = path;
}

async function show() {
  if (!session.me) return;
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const found = match(path);
  if (!found || !found.route.roles.includes(session.me.role)) {
    location.replace(`#${home()}`);
    return;
  }
  if (!keepStatus) say("");
  keepStatus = false;
  // A page without a link of its own marks the page it belongs under.
  const current = `#${(found.route.under || {})[session.me.role] || found.route.path}`;
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.getAttribute("href") === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // A fresh container per visit: a slow page that finishes after the next navigation fills a detached node.
  const root = h("div", { className: "page" });
  $("view").replaceChildren(root);
  const query = new URLSearchParams(search);
  const rendered = found.route.page(root, { id: found.id, query, path, go });
  // The page heading is there before the data loads: move focus to it, so keyboard and screen
  // reader users start at the top of the new page.
  const title = root.querySelector("h2");
  if (title) {
    document.title = `${title.textContent} — Booking console`;
    title.focus();
  }
  await rendered;
}

function showNav() {
  const links = routes
    .filter((route) => route.nav && (route.navRoles || route.roles).includes(session.me.role))
    .map((route) => h("li", {}, h("a", { href: `#${route.path}` }, route.nav)));
  $("nav").replaceChildren(h("ul", {}, links));
}

async function showSignedIn() {
  $("who").textContent = `Signed in as ${session.me.username} (${session.me.role})`;
  for (const id of ["who", "logout", "nav", "view"]) $(id).hidden = false;
  $("login").hidden = true;
  showNav();
  if (!location.hash.startsWith("#/")) location.replace(`#${home()}`); else await show();
}

function showLogin() {
  for (const id of ["who", "logout", "nav", "view"]) $(id).hidden = true;
  $("view").replaceChildren();
  $("nav").replaceChildren();
  $("login").hidden = false;
  document.title = "Log in — Booking console";
  $("username").focus();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  const failed = await logIn($("username").value, $("password").value);
  $("password").value = "";
  if (failed) { say(failure(failed, "Logging in failed.")); return; }
  $("login").reset();
  await showSignedIn();
});

$("logout").addEventListener("click", async () => {
  await logOut();
  say("You are logged out.");
  showLogin();
});

whenSignedOut(() => {
  say("Your session has ended; please log in again.");
  showLogin();
});

window.addEventListener("hashchange", show);

if (await resume()) await showSignedIn(); else showLogin();
