// "Replay with modifications": a dialog seeded from the stored request (method, path, headers,
// body, target tunnel) that posts the edited request to the inspector's replay endpoint.
import { el, fetchJSON, postJSON, toast } from "./dom.js";

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
      body.value = seed.body === null ? "" : seed.body;
      body.disabled = seed.body === null;
      dialog.querySelector(".binary-body-note").hidden = seed.body !== null;
      dialog.dataset.bodyBase64 = seed.body_base64 || "";
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
    if (body.disabled) payload.body_base64 = dialog.dataset.bodyBase64;
    else payload.body = body.value;
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
