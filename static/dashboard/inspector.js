// The inspector page: the capture list (first page rendered into the page, older pages on demand,
// new rows pushed over the WebSocket), the detail pane, keyboard navigation, replay, clear, export.
import { renderDetail } from "./detail_view.js";
import { el, fetchJSON, toast } from "./dom.js";
import { formatAgo, formatDuration, formatSize, statusClass } from "./format.js";
import { connectLive } from "./live_socket.js";
import { openReplayEditor } from "./replay_editor.js";

const boot = JSON.parse(document.getElementById("inspector-boot").textContent);
const urls = boot.urls;
// Rows kept in the page while the list is scrolled to the top; older ones come back on demand.
const MAX_ROWS = 1000;

const tbody = document.getElementById("capture-rows");
const listPane = document.getElementById("list-pane");
const detailPane = document.getElementById("detail");
const emptyState = document.getElementById("empty-state");
const loadOlder = document.getElementById("load-older");
const liveState = document.getElementById("live-state");

const rows = new Map(); // id -> {summary, tr}
let selectedId = null;
let nextBefore = boot.page.next_before;
let loadingOlder = false;

// --- rows ----------------------------------------------------------------------------------
// A small mark on a capture that is not the whole exchange (the detail's banner says more).
function truthMark(summary) {
  const incomplete = [];
  if (summary.request_complete === false) incomplete.push("request");
  if (summary.response_complete === false) incomplete.push("response");
  if (incomplete.length) {
    const why = summary.incomplete_reason ? ": " + summary.incomplete_reason : "";
    return el("span", { class: "truth-mark incomplete", title: `${incomplete.join(" and ")} incomplete${why}` }, "⚠");
  }
  if (summary.truncated) {
    return el("span", { class: "truth-mark truncated", title: "only part of this exchange was stored (capture limit)" }, "✂");
  }
  return null;
}

// A capture the endpoint's Traffic Policy answered instead of the service (basic-auth's 401,
// deny, rate-limit's 429...): the action's name, so "blocked by policy" shows at a glance.
function policyMark(summary) {
  if (!summary.policy_action) return null;
  return el(
    "span",
    { class: "policy-mark", title: `answered by the Traffic Policy (${summary.policy_action}), not the service` },
    summary.policy_action,
  );
}

function fillRow(tr, summary) {
  const code = summary.status_code;
  tr.className = "capture-row" + (summary.id === selectedId ? " selected" : "");
  tr.dataset.id = summary.id;
  tr.replaceChildren(
    el("td", { class: "col-method" }, summary.method),
    el("td", { class: "col-path", title: summary.uri }, summary.uri),
    el(
      "td",
      { class: "col-status" },
      el("span", { class: "status " + statusClass(code) }, code === null ? "…" : String(code)),
      truthMark(summary),
      policyMark(summary),
    ),
    el("td", { class: "col-duration" }, code === null ? "" : formatDuration(summary.duration_ns)),
    el("td", { class: "col-time", title: new Date(summary.start * 1000).toLocaleString(), dataset: { start: summary.start } }, formatAgo(summary.start)),
    el("td", { class: "col-size" }, formatSize(summary.response_size)),
  );
}

function upsert(summary) {
  const known = rows.get(summary.id);
  if (known) {
    const before = known.summary;
    const changed =
      before.status_code !== summary.status_code ||
      before.duration_ns !== summary.duration_ns ||
      before.response_size !== summary.response_size ||
      before.request_size !== summary.request_size ||
      before.request_complete !== summary.request_complete ||
      before.response_complete !== summary.response_complete ||
      before.truncated !== summary.truncated ||
      before.policy_action !== summary.policy_action;
    known.summary = summary;
    if (!changed) return;
    fillRow(known.tr, summary);
    if (summary.id === selectedId) loadDetail(summary.id, { keepScroll: true });
    return;
  }
  const tr = document.createElement("tr");
  fillRow(tr, summary);
  rows.set(summary.id, { summary, tr });
  // Newest first; a new capture nearly always belongs at the top.
  let before = tbody.firstElementChild;
  while (before && before.dataset.id > summary.id) before = before.nextElementSibling;
  tbody.insertBefore(tr, before);
}

function remove(id) {
  const known = rows.get(id);
  if (!known) return;
  known.tr.remove();
  rows.delete(id);
  if (id === selectedId) {
    selectedId = null;
    detailPane.replaceChildren(el("p", { class: "placeholder" }, "This request is no longer stored."));
  }
}

function trimWindow() {
  if (rows.size <= MAX_ROWS || listPane.scrollTop > 50) return;
  while (rows.size > MAX_ROWS) {
    const last = tbody.lastElementChild;
    if (!last || last.dataset.id === selectedId) break;
    remove(last.dataset.id);
  }
  const last = tbody.lastElementChild;
  if (last) nextBefore = last.dataset.id;
  updateFooter();
}

function updateFooter() {
  emptyState.hidden = rows.size > 0;
  loadOlder.hidden = !nextBefore;
  document.getElementById("shown-count").textContent = rows.size + (nextBefore ? "+" : "") + " shown";
}

function listUrl(params) {
  const query = new URLSearchParams(boot.filter_query);
  for (const [key, value] of Object.entries(params)) query.set(key, value);
  return urls.captures + "?" + query.toString();
}

async function loadOlderPage() {
  if (!nextBefore || loadingOlder) return;
  loadingOlder = true;
  try {
    const page = await fetchJSON(listUrl({ before: nextBefore }));
    for (const summary of page.captures) upsert(summary);
    nextBefore = page.next_before;
    updateFooter();
  } catch (err) {
    toast("Loading older requests failed: " + err.message, "error");
    return;
  } finally {
    loadingOlder = false;
  }
  // A body or header filter scans a bounded number of rows per request: keep going while the
  // end of the list is in view (the observer only fires when visibility changes).
  if (nextBefore && inView(loadOlder)) setTimeout(loadOlderPage, 0);
}

function inView(element) {
  const box = element.getBoundingClientRect();
  const pane = listPane.getBoundingClientRect();
  return box.height > 0 && box.top < pane.bottom && box.bottom > pane.top;
}

// Refetch the newest page (deltas sent while the socket was not open are lost).
async function refreshNewest() {
  const page = await fetchJSON(listUrl({}));
  for (const summary of page.captures) upsert(summary);
  updateFooter();
}

// --- live deltas ---------------------------------------------------------------------------
// Without filters a pushed summary goes straight in. With filters, the server decides whether it
// matches (header and body filters need the bytes), for a batch of ids at a time.
let pending = new Map();
let flushScheduled = false;

function queue(summary) {
  pending.set(summary.id, summary);
  if (!flushScheduled) {
    flushScheduled = true;
    setTimeout(flushQueue, boot.filters_active ? 250 : 16);
  }
}

async function flushQueue() {
  flushScheduled = false;
  const batch = pending;
  pending = new Map();
  if (!batch.size) return;
  if (!boot.filters_active) {
    for (const summary of batch.values()) upsert(summary);
  } else {
    const ids = [...batch.keys()];
    for (let start = 0; start < ids.length; start += 100) {
      const chunk = ids.slice(start, start + 100);
      try {
        const page = await fetchJSON(listUrl({ ids: chunk.join(","), limit: 500 }));
        const matched = new Set(page.captures.map((s) => s.id));
        for (const summary of page.captures) upsert(summary);
        for (const id of chunk) if (!matched.has(id)) remove(id);
      } catch {
        // the next delta or a reload will catch up
      }
    }
  }
  trimWindow();
  updateFooter();
}

function onMessage(message) {
  switch (message.type) {
    case "capture.created":
    case "capture.updated":
      queue(message.capture);
      break;
    case "captures.evicted":
      for (const id of message.ids) remove(id);
      updateFooter();
      break;
    case "captures.cleared":
      for (const id of [...rows.keys()]) remove(id);
      nextBefore = null;
      detailPane.replaceChildren(el("p", { class: "placeholder" }, "Requests cleared."));
      updateFooter();
      break;
    case "tunnel.started":
      if (message.tunnel) {
        boot.tunnels = boot.tunnels.filter((t) => t.name !== message.name).concat([message.tunnel]);
        renderTunnels();
      }
      break;
    case "tunnel.stopped":
      boot.tunnels = boot.tunnels.filter((t) => t.name !== message.name);
      renderTunnels();
      break;
    default:
      break;
  }
}

function renderTunnels() {
  const list = document.getElementById("tunnel-urls");
  list.replaceChildren(
    ...boot.tunnels.map((t) =>
      el("li", {}, el("a", { href: t.public_url, target: "_blank", rel: "noopener" }, t.public_url), " → " + t.addr),
    ),
  );
  document.getElementById("no-tunnels").hidden = boot.tunnels.length > 0;
}

function onState(state) {
  liveState.className = "live-state " + state;
  liveState.textContent = { live: "live", connecting: "connecting…", offline: "offline, retrying…" }[state];
  // Whatever was stored between the page render (or a drop) and this open came with no delta.
  if (state === "live") refreshNewest().catch(() => {});
}

// --- selection and detail -----------------------------------------------------------------
let detailRequest = 0;

async function loadDetail(id, { keepScroll = false } = {}) {
  const ticket = ++detailRequest;
  const scroll = detailPane.scrollTop;
  try {
    const detail = await fetchJSON(`/inspect/captures/${encodeURIComponent(id)}.json`);
    if (ticket !== detailRequest) return;
    renderDetail(detailPane, detail, { replay, replayThroughPolicy, replayEdit, curl });
    if (keepScroll) detailPane.scrollTop = scroll;
    const mark = detailPane.querySelector("mark.syntax-error");
    if (mark && !keepScroll) mark.scrollIntoView({ block: "center" });
  } catch (err) {
    if (ticket === detailRequest) detailPane.replaceChildren(el("p", { class: "placeholder" }, err.message));
  }
}

function select(id, { scroll = true } = {}) {
  if (selectedId && rows.has(selectedId)) rows.get(selectedId).tr.classList.remove("selected");
  selectedId = id;
  const known = rows.get(id);
  if (known) {
    known.tr.classList.add("selected");
    if (scroll) known.tr.scrollIntoView({ block: "nearest" });
  }
  history.replaceState(null, "", "#" + id);
  loadDetail(id);
}

function move(step) {
  const current = selectedId && rows.get(selectedId);
  let target;
  if (!current) target = tbody.firstElementChild;
  else target = step > 0 ? current.tr.nextElementSibling : current.tr.previousElementSibling;
  if (target) select(target.dataset.id);
  else if (step > 0 && nextBefore) loadOlderPage();
}

// --- actions -------------------------------------------------------------------------------
// Replay goes straight to the local service, as ngrok's inspector does; "through policy" runs the
// tunnel's Traffic Policy on it first (its on_http_request rules, as for a client on 127.0.0.1).
async function replay({ throughPolicy = false } = {}) {
  if (!selectedId) return;
  const body = throughPolicy ? { id: selectedId, through_policy: true } : { id: selectedId };
  try {
    await fetchJSON(urls.api_requests, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    toast((throughPolicy ? "Replayed through the policy " : "Replayed ") + selectedId);
  } catch (err) {
    toast("Replay failed: " + err.message, "error");
  }
}

function replayThroughPolicy() {
  return replay({ throughPolicy: true });
}

function replayEdit() {
  if (!selectedId) return;
  openReplayEditor(`/inspect/captures/${encodeURIComponent(selectedId)}/replay-seed.json`, urls.replay, (newId) => {
    const wait = () => (rows.has(newId) ? select(newId) : setTimeout(wait, 100));
    setTimeout(wait, 0);
  });
}

async function curl() {
  if (!selectedId) return;
  const response = await fetch(`/inspect/captures/${encodeURIComponent(selectedId)}/curl`);
  const command = (await response.text()).trimEnd();
  const dialog = document.getElementById("curl-dialog");
  const area = dialog.querySelector("textarea");
  area.value = command;
  dialog.showModal();
  area.select();
  try {
    await navigator.clipboard.writeText(command);
    toast("curl command copied");
  } catch {
    // not a secure context (LAN address) or no permission: the dialog lets the user copy it
  }
}

const clearButton = document.getElementById("clear-button");
let clearArmed = null;
clearButton.addEventListener("click", async () => {
  if (!clearArmed) {
    clearButton.textContent = "Really clear all?";
    clearButton.classList.add("armed");
    clearArmed = setTimeout(() => {
      clearArmed = null;
      clearButton.textContent = "Clear";
      clearButton.classList.remove("armed");
    }, 3000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = null;
  clearButton.textContent = "Clear";
  clearButton.classList.remove("armed");
  try {
    await fetchJSON(urls.api_requests, { method: "DELETE" });
    onMessage({ type: "captures.cleared" });
  } catch (err) {
    toast("Clear failed: " + err.message, "error");
  }
});

document.getElementById("curl-dialog").querySelector(".copy").addEventListener("click", async () => {
  const area = document.querySelector("#curl-dialog textarea");
  area.select();
  try {
    await navigator.clipboard.writeText(area.value);
  } catch {
    document.execCommand("copy");
  }
  toast("curl command copied");
});

tbody.addEventListener("click", (event) => {
  const tr = event.target.closest("tr.capture-row");
  if (tr) select(tr.dataset.id, { scroll: false });
});

loadOlder.addEventListener("click", loadOlderPage);
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadOlderPage();
}).observe(loadOlder);

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select, dialog[open]") || event.metaKey || event.ctrlKey || event.altKey) return;
  if (event.key === "j" || event.key === "ArrowDown") {
    move(1);
    event.preventDefault();
  } else if (event.key === "k" || event.key === "ArrowUp") {
    move(-1);
    event.preventDefault();
  } else if (event.key === "r") {
    replay();
  } else if (event.key === "e") {
    replayEdit();
  } else if (event.key === "/") {
    document.getElementById("filter-path").focus();
    event.preventDefault();
  }
});

setInterval(() => {
  const now = Date.now() / 1000;
  for (const cell of tbody.querySelectorAll("td.col-time")) cell.textContent = formatAgo(Number(cell.dataset.start), now);
}, 5000);

// --- start ---------------------------------------------------------------------------------
for (const summary of boot.page.captures) upsert(summary);
renderTunnels();
updateFooter();
const fromHash = decodeURIComponent(location.hash.slice(1));
if (fromHash) select(fromHash);
connectLive(urls.socket, onMessage, onState);
