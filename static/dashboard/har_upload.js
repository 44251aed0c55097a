// HAR import from the browser: the file as the multipart field `har`, behind the CSRF check
// (POST /inspect/import.har, dashboard/inspector/har_import.py). Resolves with the server's answer
// {imported, tunnel_name, ids, list_url}; rejects with its error message ("entry 3: ...").
import { csrfToken } from "./dom.js";

export async function uploadHar(url, file) {
  const form = new FormData();
  form.append("har", file, file.name);
  const response = await fetch(url, {
    method: "POST",
    body: form,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status line says enough
  }
  if (!response.ok) throw new Error(answer.error || response.status + " " + response.statusText);
  return answer;
}
