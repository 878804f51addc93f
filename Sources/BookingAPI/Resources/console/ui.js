// Small DOM helpers. Data only ever goes in through textContent and properties, never as HTML.

export const $ = (id) => document.getElementById(id);

/// h("button", { type: "button", onclick: f }, "text", child…)
export function h(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(properties)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key.startsWith("aria-") || key === "role" || key === "for") node.setAttribute(key, value === true ? "true" : value);
    else node[key] = value;
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/// The page's live status line; a link or other node may follow the text.
export function say(text, ...extra) {
  $("status").replaceChildren(text, ...extra.flatMap((node) => [" ", node]));
}

/// After an action whose button is gone, focus lands on its outcome (and any link in it comes next).
export function focusStatus() { $("status").focus(); }

export const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "—");

/// The page heading, focusable so that navigation can land on it.
export const heading = (text) => h("h2", { tabIndex: -1, id: "page-title" }, text);

/// A table inside its own scrolling region, so a narrow screen scrolls the table, not the page.
export function table(caption, columns, rows, id) {
  const body = h("tbody", { id }, rows);
  const captionId = `${id || "t"}-caption`;
  return h("div", { className: "scroll", role: "region", tabIndex: 0, "aria-labelledby": captionId },
    h("table", {},
      h("caption", { id: captionId }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      body));
}

export const cell = (...children) => h("td", {}, ...children);

export function labelled(id, text, input) {
  input.id = id;
  return [h("label", { htmlFor: id }, text), input];
}

/// A secret the server shows once (password, webhook secret, feed URL), with a copy button.
export function secretPanel(id, intro, value, copyLabel) {
  const code = h("code", { id: `${id}-value` }, value);
  const copy = h("button", { type: "button", id: `copy-${id}`, onclick: () => copyText(value) }, copyLabel);
  return h("div", { className: "secret", id }, h("p", {}, ...intro), h("p", {}, code, " ", copy));
}

export async function copyText(value) {
  try {
    await navigator.clipboard.writeText(value);
    say("Copied.");
  } catch {
    say("Copying is not allowed here; select the text and copy it by hand.");
  }
}

/// Marks each invalid field of a 422 where it is (aria-invalid, the message beside it); clears the old marks.
/// `fieldId(name)` maps the API's dotted field name to the input's id; the message goes to `e-<id>`.
export function markFields(container, errors, fieldId) {
  for (const input of container.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const message of container.querySelectorAll(".error")) message.textContent = "";
  let first = null;
  for (const error of errors || []) {
    const id = fieldId(error.field);
    const input = $(id);
    const message = $(`e-${id}`);
    if (!input || !message) continue;
    input.setAttribute("aria-invalid", "true");
    message.textContent = error.message;
    first = first || input;
  }
  return first;
}

/// A field with its label, the error line beside it, and the error described by the input.
export function field(id, text, input) {
  input.id = id;
  input.setAttribute("aria-describedby", `e-${id}`);
  return [h("label", { htmlFor: id }, text), input, h("p", { className: "error", id: `e-${id}` })];
}

/// A "Delete" button that asks again in the page: a second, focused "Confirm" button and "Keep".
export function confirmButton(id, label, confirmLabel, action, accessibleName) {
  const wrap = h("span", { className: "confirm" });
  const first = h("button", { type: "button", id, className: "danger", "aria-label": accessibleName }, label);
  const yes = h("button", { type: "button", id: `${id}-confirm`, className: "danger" }, confirmLabel);
  const no = h("button", { type: "button", id: `${id}-keep` }, "Keep");
  const ask = h("span", { hidden: true }, yes, " ", no);
  first.addEventListener("click", () => { first.hidden = true; ask.hidden = false; yes.focus(); });
  no.addEventListener("click", () => { ask.hidden = true; first.hidden = false; first.focus(); });
  yes.addEventListener("click", () => { yes.disabled = true; action(); });
  wrap.append(first, ask);
  return wrap;
}

/// "First page" / "Next page" controls for a keyset-paged list.
export function pager(cursor, next, go) {
  const nav = h("div", { className: "pager" });
  if (cursor) nav.append(h("button", { type: "button", className: "secondary", id: "first-page", onclick: () => go(null) }, "First page"));
  if (next) nav.append(h("button", { type: "button", className: "secondary", id: "next-page", onclick: () => go(next) }, "Next page"));
  return nav;
}

/// The message of a failed answer.
export const failure = (problem, fallback) => problem.detail || fallback;
