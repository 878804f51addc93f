// Accounts: list and filter, add one, import a CSV, change a role, disable, reset a password.
import { api, json, problem, getJSON, session } from "./api.js";
import { h, heading, table, cell, when, say, failure, secretPanel, pager, focusStatus, copyText } from "./ui.js";

export async function render(root, route) {
  const q = route.query.get("q") || "";
  const role = route.query.get("role") || "";
  const disabled = route.query.get("disabled") || "";
  const cursor = route.query.get("cursor");
  const hashFor = (changes) => {
    const next = new URLSearchParams({ q, role, disabled, ...changes });
    for (const [key, value] of [...next]) if (!value) next.delete(key);
    return `/users?${next}`;
  };
  const qField = h("input", { id: "uf-q", value: q, autocomplete: "off" });
  const roleField = h("select", { id: "uf-role" }, [["", "any"], ["admin", "admin"], ["requester", "requester"]].map(([v, t]) => h("option", { value: v, selected: v === role }, t)));
  const disabledField = h("select", { id: "uf-disabled" }, [["", "any"], ["false", "enabled"], ["true", "disabled"]].map(([v, t]) => h("option", { value: v, selected: v === disabled }, t)));
  const filters = h("form", { className: "filters", id: "user-filters" },
    h("div", {}, h("label", { htmlFor: "uf-q" }, "Username starts with"), qField),
    h("div", {}, h("label", { htmlFor: "uf-role" }, "Role"), roleField),
    h("div", {}, h("label", { htmlFor: "uf-disabled" }, "State"), disabledField),
    h("button", { type: "submit" }, "Show"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    route.go(hashFor({ q: qField.value.trim(), role: roleField.value, disabled: disabledField.value, cursor: "" }));
  });
  const secret = h("div", { id: "user-secret" });
  const list = h("div", { id: "user-list" }, h("p", {}, "Loading…"));
  const reload = () => load(list, secret, route, { q, role, disabled, cursor, hashFor });
  root.append(heading("Users"), filters, secret, list, addForm(reload), importForm(reload));
  await reload();
}

async function load(list, secret, route, { q, role, disabled, cursor, hashFor }) {
  const query = new URLSearchParams({ limit: "50" });
  if (q) query.set("q", q);
  if (role) query.set("role", role);
  if (disabled) query.set("disabled", disabled);
  if (cursor) query.set("cursor", cursor);
  const page = await getJSON(`/users?${query}`);
  if (!page) { list.replaceChildren(h("p", {}, "The users could not be loaded; try again.")); return; }
  const reload = () => load(list, secret, route, { q, role, disabled, cursor, hashFor });
  const rows = page.users.map((user) => userRow(user, secret, reload));
  list.replaceChildren(
    rows.length ? table("Users by name", ["Username", "Role", "State", "Last login", "Password"], rows, "user-rows") : h("p", {}, "No users match."),
    pager(cursor, page.next_cursor, (next) => route.go(hashFor({ cursor: next || "" }))));
}

async function patch(user, change, done, reload) {
  const answer = await api(`/users/${user.id}`, json(change, "PATCH"));
  // A 409 here is the "last enabled admin" rule: say it plainly, with the server's words.
  let outcome = done;
  if (!answer.ok) outcome = answer.status === 409 ? `Refused: ${failure(await problem(answer), "this would leave no enabled admin.")}` : failure(await problem(answer), "The change was not saved.");
  await reload();
  say(outcome);
  focusStatus();
}

function userRow(user, secret, reload) {
  const self = user.username === session.me.username ? " (you)" : "";
  const role = h("select", { id: `role-${user.id}`, "aria-label": `Role of ${user.username}` },
    ["requester", "admin"].map((r) => h("option", { value: r, selected: r === user.role }, r)));
  const saveRole = h("button", {
    type: "button", id: `save-role-${user.id}`, className: "secondary", "aria-label": `Save the role of ${user.username}`,
    onclick: () => patch(user, { role: role.value }, `${user.username} is now ${role.value}.`, reload),
  }, "Save role");
  const toggle = h("button", {
    type: "button", id: `toggle-${user.id}`, className: user.disabled ? "secondary" : "danger",
    "aria-label": `${user.disabled ? "Enable" : "Disable"} ${user.username}`,
    onclick: () => patch(user, { disabled: !user.disabled }, `${user.username} is ${user.disabled ? "enabled" : "disabled"}.`, reload),
  }, user.disabled ? "Enable" : "Disable");
  const reset = h("button", {
    type: "button", id: `reset-${user.id}`, className: "secondary", "aria-label": `Reset the password of ${user.username}`,
    onclick: async () => {
      const answer = await api(`/users/${user.id}/password`, { method: "POST" });
      if (!answer.ok) { say(failure(await problem(answer), "The password was not reset.")); return; }
      const { password } = await answer.json();
      secret.replaceChildren(secretPanel("reset-password", ["New one-time password for ", h("strong", {}, user.username), " (shown this once; their sessions have ended):"], password, "Copy password"));
      say(`The password of ${user.username} was reset.`);
      secret.querySelector("button").focus();
    },
  }, "Reset password");
  return h("tr", { id: `user-${user.id}` },
    cell(user.username + self),
    cell(h("span", { className: "inline" }, role, " ", saveRole)),
    cell(user.disabled ? "disabled " : "enabled ", toggle),
    cell(when(user.last_login_at)),
    cell(reset));
}

function addForm(reload) {
  const username = h("input", { id: "u-username", name: "username", autocomplete: "off", required: true, "aria-describedby": "e-u-username" });
  const role = h("select", { id: "u-role", name: "role" }, h("option", { value: "requester" }, "requester"), h("option", { value: "admin" }, "admin"));
  const error = h("p", { className: "error", id: "e-u-username" });
  const result = h("div", { id: "new-user-result" });
  const form = h("form", { id: "new-user" },
    h("label", { htmlFor: "u-username" }, "Username"), username, error,
    h("label", { htmlFor: "u-role" }, "Role"), role,
    h("button", { type: "submit" }, "Add user"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    username.removeAttribute("aria-invalid");
    error.textContent = "";
    result.replaceChildren();
    // No password given: the server generates one and shows it in this answer only.
    const answer = await api("/users", json({ username: username.value.trim(), role: role.value }));
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      const problemField = (body.errors || []).find((e) => e.field === "username");
      if (problemField || answer.status === 409) {
        username.setAttribute("aria-invalid", "true");
        error.textContent = problemField ? problemField.message : body.detail;
        username.focus();
      }
      say(failure(body, "The user was not added."));
      return;
    }
    form.reset();
    await reload();
    result.replaceChildren(secretPanel("new-password", ["One-time password for ", h("strong", { id: "new-password-user" }, body.username), " (shown this once):"], body.password, "Copy password"));
    say(`User ${body.username} added; give them the one-time password.`);
    result.querySelector("button").focus();
  });
  return h("section", { "aria-labelledby": "add-user-title" }, h("h3", { id: "add-user-title" }, "Add a user"), form, result);
}

function importForm(reload) {
  const text = h("textarea", { id: "import-csv", rows: 5, spellcheck: false, placeholder: "carol,requester\ndave,admin", "aria-describedby": "import-help" });
  const atomic = h("input", { id: "import-atomic", type: "checkbox", checked: true });
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  const form = h("form", { id: "import" },
    h("label", { htmlFor: "import-csv" }, "CSV lines: username,role"), text,
    h("p", { id: "import-help", className: "help" }, "New users get generated passwords (shown once below); existing users get the role given."),
    h("div", { className: "check" }, atomic, h("label", { htmlFor: "import-atomic" }, "All or nothing (any bad row changes nothing)")),
    h("button", { type: "submit" }, "Import"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.replaceChildren();
    const answer = await api(`/users/import?atomic=${atomic.checked}`, { method: "POST", headers: { "Content-Type": "text/csv" }, body: text.value });
    const body = await answer.json().catch(() => ({}));
    if (!body.results) { say(failure(body, "The import failed.")); return; }
    const rows = body.results.map((row) => h("tr", {},
      cell(String(row.row)), cell(row.username), cell(row.outcome), cell(row.error || ""),
      cell(row.password ? [h("code", {}, row.password), " ", h("button", {
        type: "button", className: "secondary", "aria-label": `Copy the password of ${row.username}`,
        onclick: () => copyText(row.password),
      }, "Copy")] : "")));
    if (answer.ok) { text.value = ""; await reload(); }
    result.replaceChildren(table("Import results (passwords are shown this once)", ["Row", "Username", "Outcome", "Error", "One-time password"], rows, "import-rows"));
    say(answer.ok ? `Imported: ${body.created} created, ${body.updated} updated, ${body.failed} failed.` : `Nothing was imported: ${failure(body, "some rows are invalid")}`);
  });
  return h("section", { "aria-labelledby": "import-title" }, h("h3", { id: "import-title" }, "Import users from CSV"), form, result);
}
