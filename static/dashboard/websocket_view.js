// The frames of a captured WebSocket (a capture the service answered with 101): a list with the
// direction (↑ client to service, ↓ service to client), time, opcode, size and close code, and
// the selected frame's payload as text, JSON or hex. Frames come from the API's extension
// (GET /api/requests/http/<id>/websocket); the list follows live: the inspector's socket says
// `frames.added` for a capture id and only the frames after the last one shown are fetched.
import { el, fetchJSON } from "./dom.js";
import { base64ToBytes, formatSize, hexDump } from "./format.js";
import { connectLive } from "./live_socket.js";

const VIEWS = ["Text", "JSON", "Hex"];
let live = null; // the socket of the section on screen: one at a time

export function websocketSection(detail) {
  if (live) {
    live.close();
    live = null;
  }
  if (!detail.websocket) return null;
  addStyles();
  const state = { after: -1, frames: [], selected: null, view: null, loading: null, again: false };
  const totals = el("p", { class: "ws-totals", role: "status" }, "Loading frames…");
  const list = el("ol", { class: "ws-frames", "aria-label": "Frames" });
  const tabs = el("div", { class: "tabs ws-views", role: "tablist" });
  const note = el("p", { class: "ws-note muted" });
  const payload = el("pre", { class: "ws-payload" });
  const selected = el("div", { class: "ws-selected" }, tabs, note, payload);
  const section = el(
    "section",
    { class: "websocket", "aria-label": "WebSocket" },
    el("h3", {}, "WebSocket"),
    totals,
    el("div", { class: "ws-body" }, list, selected),
  );

  for (const name of VIEWS) {
    tabs.append(
      el("button", { type: "button", role: "tab", class: "tab", dataset: { view: name }, onclick: () => show(state.selected, name) }, name),
    );
  }

  function show(frame, view) {
    state.selected = frame;
    for (const row of list.children) row.setAttribute("aria-selected", String(frame !== null && row.dataset.seq === String(frame.seq)));
    if (!frame) {
      selected.hidden = true;
      return;
    }
    selected.hidden = false;
    const bytes = base64ToBytes(frame.payload);
    const text = new TextDecoder("utf-8").decode(bytes);
    state.view = view || state.view || (parsesAsJSON(text) ? "JSON" : frame.opcode_name === "binary" ? "Hex" : "Text");
    for (const button of tabs.children) button.setAttribute("aria-selected", String(button.dataset.view === state.view));
    const notes = [];
    if (frame.truncated) notes.push(`the first ${formatSize(bytes.length)} of ${formatSize(frame.size)}`);
    if (frame.compressed) notes.push("compressed (permessage-deflate): shown as it crossed");
    if (frame.close_code !== null) notes.push(`close code ${frame.close_code}` + (frame.close_reason ? `: ${frame.close_reason}` : ""));
    note.textContent = notes.join(" · ");
    if (state.view === "Hex") payload.textContent = hexDump(bytes, 16);
    else if (state.view === "JSON") payload.textContent = prettyJSON(text);
    else payload.textContent = text;
  }

  function row(frame) {
    const outgoing = frame.direction === "client";
    return el(
      "li",
      {
        class: "ws-frame " + frame.direction + (frame.opcode_name === "close" ? " close" : ""),
        dataset: { seq: String(frame.seq) },
        tabindex: "0",
        role: "option",
        onclick: () => show(frame, null),
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            show(frame, null);
          }
        },
      },
      el("span", { class: "ws-dir", title: outgoing ? "client to service" : "service to client" }, outgoing ? "↑" : "↓"),
      el("span", { class: "ws-time" }, clock(frame.time)),
      el("span", { class: "ws-opcode" }, frame.opcode_name + (frame.fin ? "" : " (more)")),
      el("span", { class: "ws-size" }, formatSize(frame.size)),
      el("span", { class: "ws-preview" }, preview(frame)),
    );
  }

  async function load() {
    // One fetch at a time; an announcement during a fetch asks for one more after it.
    if (state.loading) {
      state.again = true;
      return state.loading;
    }
    state.loading = (async () => {
      do {
        state.again = false;
        const body = await fetchJSON(detail.websocket.frames + "?after=" + state.after);
        for (const frame of body.frames) {
          if (frame.seq <= state.after) continue;
          state.after = frame.seq;
          state.frames.push(frame);
          list.append(row(frame));
        }
        totals.textContent = describe(body.totals, state.frames.length);
        if (state.selected === null && state.frames.length) show(state.frames[0], null);
      } while (state.again);
    })()
      .catch((error) => {
        totals.textContent = "Frames could not be read: " + error.message;
      })
      .finally(() => {
        state.loading = null;
      });
    return state.loading;
  }

  selected.hidden = true;
  load();
  const socket = connectLive(
    detail.websocket.socket,
    (message) => {
      if (message.type !== "frames.added" || !(message.ids || []).includes(detail.id)) return;
      if (!section.isConnected) {
        socket.close(); // this detail is no longer shown
        if (live === socket) live = null;
        return;
      }
      load();
    },
    (status, reconnected) => {
      if (status === "live" && reconnected && section.isConnected) load(); // announcements missed meanwhile
    },
  );
  live = socket;
  return section;
}

function describe(totals, shown) {
  if (!totals) return shown ? `${shown} frames` : "No frames yet.";
  const parts = [
    `↑ ${totals.client_frames} frames (${formatSize(totals.client_bytes)})`,
    `↓ ${totals.server_frames} frames (${formatSize(totals.server_bytes)})`,
  ];
  const all = totals.client_frames + totals.server_frames;
  if (totals.recorded < all) parts.push(`${totals.recorded} of ${all} recorded (budget reached)`);
  if (totals.stopped) parts.push("recording stopped: " + totals.stopped);
  return parts.join(" · ");
}

function preview(frame) {
  if (frame.opcode_name === "close") return frame.close_code === null ? "" : String(frame.close_code) + " " + frame.close_reason;
  if (frame.opcode_name === "binary" || frame.compressed) return "";
  const text = new TextDecoder("utf-8").decode(base64ToBytes(frame.payload).subarray(0, 120));
  return text.replace(/\s+/g, " ");
}

function clock(epochSeconds) {
  const moment = new Date(epochSeconds * 1000);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}.${pad(moment.getMilliseconds(), 3)}`;
}

function parsesAsJSON(text) {
  const start = text.trimStart()[0];
  if (start !== "{" && start !== "[") return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function prettyJSON(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (error) {
    return "Not JSON (" + error.message + ")\n\n" + text;
  }
}

function addStyles() {
  if (document.getElementById("websocket-view-css")) return;
  const link = el("link", { id: "websocket-view-css", rel: "stylesheet", href: new URL("./websocket_view.css", import.meta.url).href });
  document.head.append(link);
}
