// A tiny element builder: text goes in as text nodes, never as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// fetch() that throws an Error with the server's message on a non-2xx answer.
export async function fetchJSON(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      message = body.error || body.msg || message;
      if (body.details && body.details.err) message += ": " + body.details.err;
    } catch {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
  if (response.status === 204) return null;
  return response.json();
}

export function postJSON(url, body) {
  return sendJSON("POST", url, body);
}

// A state-changing request to the inspector's own endpoints (CSRF token in its header); the
// body, when given, as JSON. Resolves to the answer's JSON (null for 204).
export function sendJSON(method, url, body = undefined, options = {}) {
  const headers = { "X-CSRFToken": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetchJSON(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), ...options });
}

let toastTimer = null;
export function toast(text, kind = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.className = "toast " + kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 4000);
}
