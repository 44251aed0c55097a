// Copy text to the clipboard, from a string or a promise of one (a body fetched on click).
//
// The async Clipboard API needs a secure context (localhost counts; a LAN address over http does
// not): there, the text goes through a hidden textarea and execCommand("copy"). A promise is handed
// to ClipboardItem as it is, so the click's user activation is not lost while the body downloads.
import { toast } from "./dom.js";

export async function copyText(textOrPromise, what) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      if (typeof textOrPromise === "string") {
        await navigator.clipboard.writeText(textOrPromise);
      } else if (window.ClipboardItem) {
        const blob = Promise.resolve(textOrPromise).then((text) => new Blob([text], { type: "text/plain" }));
        await navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]);
      } else {
        await navigator.clipboard.writeText(await textOrPromise);
      }
    } else {
      copyByTextarea(await textOrPromise);
    }
    toast(`${what} copied`);
    return true;
  } catch (err) {
    toast(`Copying the ${what.toLowerCase()} failed: ${err.message}`, "error");
    return false;
  }
}

function copyByTextarea(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("the browser refused");
}

// A body's text as the detail shows it: its bytes (content coding undone) in its charset.
export async function bodyText(url, contentType) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  const bytes = await response.arrayBuffer();
  const charset = /charset="?([^";]+)/i.exec(contentType || "");
  let decoder;
  try {
    decoder = new TextDecoder(charset ? charset[1].trim() : "utf-8");
  } catch {
    decoder = new TextDecoder("utf-8"); // a charset the browser does not know
  }
  return decoder.decode(bytes);
}
