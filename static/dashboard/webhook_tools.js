// Webhook tools in the capture detail: copy as fetch / HTTPie / Python requests, diff (a replay
// against its original, or any two captures), and replay with re-signing.
//
// detail_view.js calls webhookTools(detail) for the buttons of the detail's action row; each tool
// opens its own <dialog>, made here on first use. The code, the diff and the signatures are made on
// the server (copy_as.py, capture_diff.py, webhook_resign.py); this only asks for them and shows them.
// The secret typed for re-signing is sent with the replay and kept nowhere, not even in the dialog
// after it closes.
import { copyText } from "./clipboard.js";
import { el, fetchJSON, postJSON, toast } from "./dom.js";

const LANGUAGES = { fetch: "JavaScript fetch", httpie: "HTTPie", requests: "Python requests" };
const MARK_KEY = "inspector.diff-a"; // the capture marked as the diff's left side, per tab

let stylesheetAdded = false;
function addStylesheet() {
  if (stylesheetAdded) return;
  stylesheetAdded = true;
  document.head.append(el("link", { rel: "stylesheet", href: new URL("./webhook_tools.css", import.meta.url).href }));
}

export function webhookTools(detail) {
  addStylesheet();
  const marked = sessionStorage.getItem(MARK_KEY);
  return [
    el(
      "details",
      { class: "tool-menu", id: "copy-as-menu" },
      el("summary", { class: "button" }, "Copy as…"),
      el(
        "div",
        { class: "tool-menu-items" },
        Object.entries(LANGUAGES).map(([language, label]) =>
          el("button", { type: "button", "data-language": language, onclick: () => copyAs(detail.id, language) }, label),
        ),
      ),
    ),
    detail.replay_of
      ? el(
          "a",
          { class: "button", id: "diff-original", href: diffUrl(detail.replay_of, detail.id), title: "This replay beside its original" },
          "Diff with original",
        )
      : null,
    marked && marked !== detail.id
      ? el("a", { class: "button", id: "diff-marked", href: diffUrl(marked, detail.id) }, "Diff with " + shortId(marked))
      : null,
    el(
      "button",
      {
        type: "button",
        id: "mark-for-diff",
        title: "Mark this capture, open another, and compare them",
        onclick: (event) => {
          sessionStorage.setItem(MARK_KEY, detail.id);
          event.currentTarget.textContent = "Marked for diff";
          toast("Marked " + shortId(detail.id) + ": open another capture and choose “Diff with”");
        },
      },
      marked === detail.id ? "Marked for diff" : "Mark for diff",
    ),
    el(
      "button",
      { type: "button", id: "resign-button", onclick: () => openResign(detail.id), title: "Sign again with your secret and replay" },
      "Replay with re-signing",
    ),
  ];
}

function diffUrl(a, b) {
  return "/inspect/diff?" + new URLSearchParams({ a, b });
}

function shortId(id) {
  return "…" + id.slice(-6);
}

// --- copy as -------------------------------------------------------------------------------------
let copyDialog = null;

function ensureCopyDialog() {
  if (copyDialog) return copyDialog;
  copyDialog = el(
    "dialog",
    { class: "tool-dialog", id: "copy-as-dialog" },
    el(
      "form",
      { method: "dialog" },
      el("h2", {}, "Copy as ", el("span", { class: "language" })),
      el("textarea", { rows: 14, readonly: true, spellcheck: "false" }),
      el(
        "div",
        { class: "dialog-buttons" },
        el("button", { type: "button", class: "copy" }, "Copy"),
        el("button", { type: "submit", value: "close" }, "Close"),
      ),
    ),
  );
  document.body.append(copyDialog);
  return copyDialog;
}

async function copyAs(id, language) {
  const menu = document.getElementById("copy-as-menu");
  if (menu) menu.open = false;
  const url = `/inspect/captures/${encodeURIComponent(id)}/as/${language}`;
  const text = fetch(url, { credentials: "same-origin" }).then((response) => {
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return response.text();
  });
  const dialog = ensureCopyDialog();
  dialog.querySelector(".language").textContent = LANGUAGES[language];
  const area = dialog.querySelector("textarea");
  area.value = "";
  dialog.dataset.language = language;
  dialog.querySelector(".copy").onclick = () => copyText(area.value, LANGUAGES[language]);
  if (!dialog.open) dialog.showModal();
  // Copied at once (the click's user activation is still fresh), and shown to read or copy again.
  copyText(text, LANGUAGES[language]);
  try {
    area.value = await text;
  } catch (error) {
    area.value = "";
    toast("Could not make the " + LANGUAGES[language] + " code: " + error.message, "error");
  }
}

// --- replay with re-signing ------------------------------------------------------------------
let resignDialog = null;

function ensureResignDialog() {
  if (resignDialog) return resignDialog;
  resignDialog = el(
    "dialog",
    { class: "tool-dialog replay-dialog", id: "resign-dialog" },
    el(
      "form",
      { method: "dialog" },
      el("h2", {}, "Replay with re-signing"),
      el(
        "p",
        { class: "note" },
        "The request is signed again now with your secret, as the provider would sign it, so the receiver's signature and timestamp checks pass. The secret is sent with this replay only and kept nowhere.",
      ),
      el(
        "div",
        { class: "provider-row" },
        el("label", {}, "Provider ", el("select", { name: "provider", required: true })),
        el("label", { class: "grow" }, "Signing secret ", el("input", { name: "secret", type: "password", autocomplete: "off", required: true, size: 30 })),
        el("label", {}, "Tunnel ", el("select", { name: "tunnel_name" })),
      ),
      el("label", {}, "Body (edit it if you like: the signature covers what is sent)", el("textarea", { name: "body", rows: 10, spellcheck: "false" })),
      el("p", { class: "note binary-body-note", hidden: true }, "The body is binary: it is signed and sent unchanged."),
      el(
        "label",
        { class: "inline" },
        el("input", { type: "checkbox", name: "through_policy" }),
        "Send through the tunnel's Traffic Policy (to check its verify-webhook)",
      ),
      el("p", { class: "dialog-error", hidden: true }),
      el("p", { class: "resign-result", role: "status", hidden: true }),
      el(
        "div",
        { class: "dialog-buttons" },
        el("button", { type: "submit", value: "cancel", formnovalidate: true }, "Close"),
        el("button", { type: "submit", value: "send", class: "primary" }, "Sign and replay"),
      ),
    ),
  );
  document.body.append(resignDialog);
  resignDialog.addEventListener("close", () => {
    resignDialog.querySelector('[name="secret"]').value = "";
  });
  return resignDialog;
}

async function openResign(id) {
  let seed;
  try {
    seed = await fetchJSON(`/inspect/captures/${encodeURIComponent(id)}/resign-seed.json`);
  } catch (error) {
    toast("Cannot open the re-signing dialog: " + error.message, "error");
    return;
  }
  const dialog = ensureResignDialog();
  const form = dialog.querySelector("form");
  const provider = form.elements.provider;
  provider.replaceChildren(
    ...Object.entries(seed.providers).map(([name, label]) => el("option", { value: name, selected: name === seed.provider }, label)),
  );
  const tunnels = form.elements.tunnel_name;
  tunnels.replaceChildren(...seed.tunnels.map((name) => el("option", { value: name, selected: name === seed.tunnel_name }, name)));
  const binary = seed.body === null;
  form.elements.body.value = binary ? "" : seed.body;
  form.elements.body.disabled = binary;
  dialog.querySelector(".binary-body-note").hidden = !binary;
  form.elements.through_policy.checked = false;
  dialog.querySelector(".dialog-error").hidden = true;
  dialog.querySelector(".resign-result").hidden = true;
  form.onsubmit = async (event) => {
    if (event.submitter && event.submitter.value !== "send") return;
    event.preventDefault();
    await sendResigned(dialog, seed);
  };
  dialog.showModal();
  form.elements.secret.focus();
}

async function sendResigned(dialog, seed) {
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".dialog-error");
  const result = dialog.querySelector(".resign-result");
  error.hidden = true;
  const payload = {
    id: seed.id,
    tunnel_name: form.elements.tunnel_name.value,
    method: seed.method,
    target: seed.target,
    headers: seed.headers,
    through_policy: form.elements.through_policy.checked,
    resign: { provider: form.elements.provider.value, secret: form.elements.secret.value },
  };
  if (seed.body === null) payload.body_base64 = seed.body_base64;
  else payload.body = form.elements.body.value;
  try {
    const answer = await postJSON("/inspect/replay", payload);
    const status = answer.status_code === null ? "no answer" : String(answer.status_code);
    result.replaceChildren(
      "Signed for " + form.elements.provider.selectedOptions[0].textContent + " and replayed: " + status + " · ",
      el("a", { href: "/inspect/http#" + answer.id, class: "resigned-capture" }, answer.id),
      " · ",
      el("a", { href: diffUrl(seed.id, answer.id), class: "resigned-diff" }, "Diff with the original"),
    );
    result.dataset.status = status;
    result.hidden = false;
    toast("Re-signed replay answered " + status);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
  }
}
