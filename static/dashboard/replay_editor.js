// "Replay with modifications": a dialog seeded from the stored request (method, path, headers,
// body, target tunnel) that posts the edited request to the inspector's replay endpoint.
//
// The body is sent exactly as stored unless it is edited:
// - a text body shows in the textarea; a textarea turns CR LF into LF, so an unedited body is sent
//   from the seed itself, never read back from the textarea;
// - a binary body (not UTF-8, or holding control characters other than tab, CR and LF) is shown as
//   its size and a hex dump, never as mangled text, and sent as its stored bytes (base64); "Edit
//   bytes as hex" opens it as hex digits, read back into bytes when sent.
import { el, fetchJSON, postJSON, toast } from "./dom.js";
import { base64ToBytes, bytesToBase64, formatSize, hexDump, hexPairs, parseHex } from "./format.js";

// C0 controls but tab, LF and CR, and DEL: text that holds them is shown as bytes.
const BINARY_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

// The binary body's box, made once inside the dialog (after the template's "binary" note).
function binaryBox(dialog) {
  let box = dialog.querySelector(".binary-body");
  if (box) return box;
  const hexEdit = el("textarea", { class: "hex-edit", rows: "10", spellcheck: "false", hidden: true, "aria-label": "Body bytes as hex" });
  box = el(
    "div",
    { class: "binary-body", hidden: true },
    el("p", { class: "binary-size" }),
    el("pre", { class: "hex" }),
    el(
      "button",
      {
        type: "button",
        class: "edit-hex",
        onclick: () => {
          hexEdit.hidden = false;
          hexEdit.focus();
        },
      },
      "Edit bytes as hex",
    ),
    hexEdit,
  );
  dialog.querySelector(".binary-body-note").after(box);
  return box;
}

// The editor's state for one opening: what to send when nothing was edited.
let seeded = { text: null, normalized: null, base64: null, hex: "" };

export function openReplayEditor(seedUrl, replayUrl, onReplayed) {
  const dialog = document.getElementById("replay-dialog");
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".dialog-error");
  const signed = dialog.querySelector(".signed-warning");
  error.hidden = true;
  fetchJSON(seedUrl)
    .then((seed) => {
      const tunnel = form.elements.tunnel_name;
      tunnel.replaceChildren(...seed.tunnels.map((name) => el("option", { value: name }, name)));
      if (!seed.tunnels.includes(seed.tunnel_name)) {
        tunnel.prepend(el("option", { value: seed.tunnel_name, disabled: true }, seed.tunnel_name + " (stopped)"));
      }
      tunnel.value = seed.tunnels.includes(seed.tunnel_name) ? seed.tunnel_name : seed.tunnels[0] || "";
      form.elements.method.value = seed.method;
      form.elements.target.value = seed.target;
      form.elements.headers.value = seed.headers;
      const body = form.elements.body;
      const binary = seed.body === null || BINARY_TEXT.test(seed.body);
      const bytes = seed.body === null ? base64ToBytes(seed.body_base64 || "") : new TextEncoder().encode(seed.body);
      seeded = {
        text: binary ? null : seed.body,
        normalized: binary ? null : seed.body.replace(/\r\n?/g, "\n"),
        base64: binary ? bytesToBase64(bytes) : null,
        hex: binary ? hexPairs(bytes) : "",
      };
      body.value = binary ? "" : seed.body;
      body.disabled = binary;
      body.hidden = binary;
      dialog.querySelector(".binary-body-note").hidden = !binary;
      const box = binaryBox(dialog);
      box.hidden = !binary;
      box.querySelector(".binary-size").textContent = binary ? `${bytes.length} bytes (${formatSize(bytes.length)}), binary: sent unchanged unless you edit the hex` : "";
      box.querySelector("pre.hex").textContent = binary ? hexDump(bytes.subarray(0, 64 * 1024)) + (bytes.length > 64 * 1024 ? "\n…" : "") : "";
      const hexEdit = box.querySelector(".hex-edit");
      hexEdit.value = seeded.hex;
      hexEdit.hidden = true;
      dialog.dataset.id = seed.id;
      form.elements.through_policy.checked = false; // each replay bypasses the policy unless asked
      signed.hidden = seed.signed.length === 0;
      signed.textContent = seed.signed.length
        ? `This request carries ${seed.signed.join(", ")}: the receiver will likely refuse a replay, and a changed body breaks the signature.`
        : "";
      dialog.querySelector(".truncated-warning").hidden = !seed.truncated;
      dialog.showModal();
      form.elements.method.focus();
    })
    .catch((err) => toast("Cannot open the editor: " + err.message, "error"));

  form.onsubmit = async (event) => {
    event.preventDefault();
    if (event.submitter && event.submitter.value === "cancel") {
      dialog.close();
      return;
    }
    const body = form.elements.body;
    const payload = {
      id: dialog.dataset.id,
      tunnel_name: form.elements.tunnel_name.value,
      method: form.elements.method.value,
      target: form.elements.target.value,
      headers: form.elements.headers.value,
      through_policy: form.elements.through_policy.checked,
    };
    if (seeded.base64 !== null) {
      const hexEdit = dialog.querySelector(".binary-body .hex-edit");
      try {
        payload.body_base64 = hexEdit.value === seeded.hex ? seeded.base64 : bytesToBase64(parseHex(hexEdit.value));
      } catch (err) {
        error.textContent = "Body hex: " + err.message;
        error.hidden = false;
        return;
      }
    } else {
      // Unedited: the stored text itself (the textarea has turned its CR LF into LF).
      payload.body = body.value === seeded.normalized ? seeded.text : body.value;
    }
    const submit = form.querySelector('button[value="replay"]');
    submit.disabled = true;
    try {
      const result = await postJSON(replayUrl, payload);
      dialog.close();
      toast("Replayed: " + (result.status_code || "sent"));
      onReplayed(result.id);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  };
}
