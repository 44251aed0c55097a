// The inspector page: the capture list (first page rendered into the page, more pages on demand,
// new rows pushed over the WebSocket), the detail pane, and what acts on them (keys, replay,
// delete, pins, pause, jump, clear, export). Rows: capture_rows.js; keys: keyboard.js; stream
// control: stream_control.js; the address and the narrow screen's detail sheet: url_state.js.
import { fillRow, comesBefore, parseSort, rowChanged, titleOfTimeCell, formatClock } from "./capture_rows.js";
import { renderDetail } from "./detail_view.js";
import { el, fetchJSON, sendJSON, toast } from "./dom.js";
import { burstScheduler, installKeys } from "./keyboard.js";
import { connectLive } from "./live_socket.js";
import { openReplayEditor } from "./replay_editor.js";
import { Pins, epochOfLocalInput, localInputValue, setupClear, toggleButton } from "./stream_control.js";
import { DEFAULT_SORT, DetailSheet, filterHref, hashId, withSort } from "./url_state.js";

const boot = JSON.parse(document.getElementById("inspector-boot").textContent);
const urls = boot.urls;
// Rows kept in the page while the list is scrolled to the top; older ones come back on demand.
const MAX_ROWS = 1000;

const tbody = document.getElementById("capture-rows");
const pinnedBody = document.getElementById("pinned-rows");
const listScroll = document.getElementById("list-scroll");
const detailPane = document.getElementById("detail-pane");
const detailBody = document.getElementById("detail");
const emptyState = document.getElementById("empty-state");
const loadOlder = document.getElementById("load-older");
const liveState = document.getElementById("live-state");
const streamNote = document.getElementById("stream-note");
const pinButton = document.getElementById("pin-button");
const deleteButton = document.getElementById("delete-button");

const rows = new Map(); // id -> {summary, tr}
const pins = new Pins();
const replaysOf = new Map(); // original id -> ids of its replays seen here, oldest first
const replayOrigins = new Map(); // replay id -> original, for replays made here (live rows lack it)
const deletedHere = new Set(); // deleted from this page: later deltas for them are stale
const tunnelHosts = new Map();
let sort = boot.sort || DEFAULT_SORT;
let selectedId = null;
let nextBefore = boot.page.next_before;
let loadingOlder = false;
let paused = false;
let following = false;
let jumpedTo = null; // epoch seconds while the list starts at a jumped-to time
const held = new Map(); // new rows held back while paused or jumped

// --- rows ----------------------------------------------------------------------------------
function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}

function rememberTunnels() {
  tunnelHosts.clear();
  for (const tunnel of boot.tunnels) tunnelHosts.set(tunnel.name, hostOf(tunnel.public_url));
}

function draw(entry) {
  const summary = entry.summary;
  fillRow(entry.tr, summary, {
    selected: summary.id === selectedId,
    pinned: pins.has(summary.id),
    gone: Boolean(entry.gone),
    replays: replaysOf.get(summary.id),
    host: tunnelHosts.get(summary.tunnel_name),
  });
}

// A delta pushed before its row knew it was a replay (the new row this tab asked for) keeps what
// is known; pushed rows carry replay_of themselves.
function withReplayOf(summary, known) {
  if (summary.replay_of) return summary;
  const origin = (known && known.replay_of) || replayOrigins.get(summary.id) || "";
  return origin ? { ...summary, replay_of: origin } : summary;
}

function noteReplay(summary) {
  if (!summary.replay_of) return;
  const list = replaysOf.get(summary.replay_of) || [];
  if (list.includes(summary.id)) return;
  list.push(summary.id);
  list.sort();
  replaysOf.set(summary.replay_of, list);
  const original = rows.get(summary.replay_of);
  if (original) draw(original);
}

// Where a new row goes in the list: its place in the sort order, or nowhere when it belongs
// past the last row loaded (it comes with the next page).
function placeFor(summary) {
  const last = tbody.lastElementChild;
  // The common cases first: a new capture on top, an older page's row at the end.
  if (last && !comesBefore(summary, rows.get(last.dataset.id).summary, sort)) return nextBefore ? undefined : null;
  let before = tbody.firstElementChild;
  while (before && !comesBefore(summary, rows.get(before.dataset.id).summary, sort)) before = before.nextElementSibling;
  if (!before && nextBefore) return undefined;
  return before;
}

// Insert or update a row. `force`: insert even where the sort order says it belongs to a later page.
function upsert(incoming, { force = false } = {}) {
  if (deletedHere.has(incoming.id)) return null;
  const known = rows.get(incoming.id);
  const summary = withReplayOf(incoming, known && known.summary);
  noteReplay(summary);
  if (pins.has(summary.id)) pins.update(summary);
  if (known) {
    const before = known.summary;
    known.summary = summary;
    known.gone = false;
    if (!rowChanged(before, summary)) return known;
    draw(known);
    if (known.tr.parentElement === tbody && !pins.has(summary.id)) reposition(known);
    if (summary.id === selectedId) loadDetail(summary.id, { keepScroll: true });
    return known;
  }
  const entry = { summary, tr: document.createElement("tr"), gone: false };
  if (pins.has(summary.id)) {
    rows.set(summary.id, entry);
    draw(entry);
    pinnedBody.append(entry.tr);
    return entry;
  }
  let place = placeFor(summary);
  if (place === undefined) {
    if (!force) return null;
    place = null;
  }
  rows.set(summary.id, entry);
  draw(entry);
  tbody.insertBefore(entry.tr, place);
  return entry;
}

// A row whose sort value changed (a pending request completed) moves to its new place.
function reposition(entry) {
  if (sort === DEFAULT_SORT) return;
  const prev = entry.tr.previousElementSibling;
  const next = entry.tr.nextElementSibling;
  const fits =
    (!prev || !comesBefore(entry.summary, rows.get(prev.dataset.id).summary, sort)) &&
    (!next || comesBefore(entry.summary, rows.get(next.dataset.id).summary, sort));
  if (fits) return;
  entry.tr.remove();
  const place = placeFor(entry.summary);
  if (place === undefined) rows.delete(entry.summary.id);
  else tbody.insertBefore(entry.tr, place);
}

// Take a row out of the view (filtered out, trimmed); the capture may still be stored.
function drop(id) {
  const known = rows.get(id);
  if (!known || pins.has(id)) return;
  known.tr.remove();
  rows.delete(id);
}

// The capture is no longer stored (evicted, deleted, cleared). A pinned one stays, marked gone.
function forget(id) {
  const known = rows.get(id);
  if (!known) return;
  if (pins.has(id)) {
    known.gone = true;
    draw(known);
  } else {
    known.tr.remove();
    rows.delete(id);
  }
  if (id === selectedId) {
    detailBody.replaceChildren(el("p", { class: "placeholder" }, "This request is no longer stored."));
  }
}

function trimWindow() {
  if (sort !== DEFAULT_SORT || jumpedTo !== null) return;
  if (rows.size <= MAX_ROWS || listScroll.scrollTop > 50) return;
  while (tbody.childElementCount > MAX_ROWS) {
    const last = tbody.lastElementChild;
    if (!last || last.dataset.id === selectedId) break;
    drop(last.dataset.id);
  }
  const last = tbody.lastElementChild;
  if (last) nextBefore = last.dataset.id;
  updateFooter();
}

function updateFooter() {
  const listed = tbody.childElementCount;
  emptyState.hidden = listed + pinnedBody.childElementCount > 0;
  loadOlder.hidden = !nextBefore;
  document.getElementById("shown-count").textContent = listed + (nextBefore ? "+" : "") + " shown";
  const notes = [];
  if (jumpedTo !== null) notes.push(["From " + formatClock(jumpedTo), "Back to newest", backToNewest]);
  else if (paused) notes.push([`Paused · ${held.size} new`, "Resume", () => setPaused(false)]);
  streamNote.replaceChildren(
    ...notes.flatMap(([text, button, action]) => [
      text + " ",
      el("button", { type: "button", class: "stream-action", onclick: action }, button),
    ]),
  );
}

function listUrl(params) {
  const query = new URLSearchParams(boot.filter_query);
  if (sort !== DEFAULT_SORT) query.set("sort", sort);
  for (const [key, value] of Object.entries(params)) query.set(key, value);
  return urls.captures + "?" + query.toString();
}

async function loadOlderPage() {
  if (!nextBefore || loadingOlder) return;
  loadingOlder = true;
  try {
    const page = await fetchJSON(listUrl({ before: nextBefore }));
    for (const summary of page.captures) upsert(summary, { force: true });
    nextBefore = page.next_before;
    updateFooter();
    showSearchNote(page.search);
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

// A body or free-text search scans a bounded number of rows per page and says how far back it got:
// keep that line true as older pages load ("searched the newest N ... back to T").
function showSearchNote(report) {
  if (!report) return;
  let note = document.getElementById("search-note");
  if (report.finished) {
    if (note) note.hidden = true;
    return;
  }
  if (!note) {
    note = el("p", { class: "search-note muted", id: "search-note", role: "status" });
    document.getElementById("stream-bar").before(note);
  }
  note.hidden = false;
  note.textContent = report.text;
}

function inView(element) {
  const box = element.getBoundingClientRect();
  const pane = listScroll.getBoundingClientRect();
  return box.height > 0 && box.top < pane.bottom && box.bottom > pane.top;
}

// Refetch the newest page (deltas sent while the socket was not open are lost).
async function refreshNewest() {
  if (jumpedTo !== null) return;
  const page = await fetchJSON(listUrl({}));
  for (const summary of page.captures) {
    if (paused && !rows.has(summary.id)) held.set(summary.id, summary);
    else upsert(summary);
  }
  updateFooter();
}

// Replace the list with its first page (after a new sort, a jump, or back to newest).
async function reloadList(params = {}) {
  const page = await fetchJSON(listUrl(params));
  for (const id of [...rows.keys()]) if (!pins.has(id)) drop(id);
  tbody.replaceChildren();
  nextBefore = page.next_before;
  held.clear();
  for (const summary of page.captures) upsert(summary, { force: true });
  listScroll.scrollTop = 0;
  updateFooter();
  return page;
}

// --- live deltas ---------------------------------------------------------------------------
// Without filters a pushed summary goes straight in. With filters, the server decides whether it
// matches (header and body filters need the bytes), for a batch of ids at a time.
let pending = new Map();
let flushScheduled = false;

function queue(summary) {
  if (deletedHere.has(summary.id)) return;
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
  const matched = [];
  for (const [id, summary] of batch) {
    if (pins.has(id)) {
      upsert(summary); // a pin shows whatever the filters say
      batch.delete(id);
    }
  }
  if (!boot.filters_active) {
    matched.push(...batch.values());
  } else {
    const ids = [...batch.keys()];
    for (let start = 0; start < ids.length; start += 100) {
      const chunk = ids.slice(start, start + 100);
      try {
        const page = await fetchJSON(listUrl({ ids: chunk.join(","), limit: 500 }));
        const found = new Set(page.captures.map((s) => s.id));
        matched.push(...page.captures);
        for (const id of chunk) if (!found.has(id)) drop(id);
      } catch {
        // the next delta or a reload will catch up
      }
    }
  }
  let newest = null;
  for (const summary of matched) {
    if (!rows.has(summary.id) && (paused || jumpedTo !== null)) {
      held.set(summary.id, summary);
      continue;
    }
    const isNew = !rows.has(summary.id);
    const entry = upsert(summary);
    if (isNew && entry && (!newest || summary.id > newest)) newest = summary.id;
  }
  if (following && newest && sort === DEFAULT_SORT) {
    listScroll.scrollTop = 0;
    select(newest, { source: "follow" });
  }
  trimWindow();
  updateFooter();
  clear.refreshSoon();
}

function onMessage(message) {
  switch (message.type) {
    case "capture.created":
    case "capture.updated":
      queue(message.capture);
      break;
    case "captures.evicted":
      for (const id of message.ids) {
        forget(id);
        held.delete(id);
      }
      updateFooter();
      break;
    case "captures.cleared":
      for (const id of [...rows.keys()]) forget(id);
      held.clear();
      nextBefore = null;
      if (!selectedId || !pins.has(selectedId)) detailBody.replaceChildren(el("p", { class: "placeholder" }, "Requests cleared."));
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
  rememberTunnels();
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
let detailAbort = null;

const sheet = new DetailSheet({ onClosed: () => listScroll.focus({ preventScroll: true }) });

async function loadDetail(id, { keepScroll = false } = {}) {
  const ticket = ++detailRequest;
  if (detailAbort) detailAbort.abort();
  detailAbort = new AbortController();
  const scroll = detailPane.scrollTop;
  detailBody.classList.add("loading");
  try {
    const detail = await fetchJSON(`/inspect/captures/${encodeURIComponent(id)}.json`, { signal: detailAbort.signal });
    if (ticket !== detailRequest) return;
    renderDetail(detailBody, detail, { replay, replayThroughPolicy, replayEdit, curl });
    linkReplays(detail);
    document.getElementById("sheet-title").textContent = `${detail.method} ${detail.uri}`;
    if (keepScroll) detailPane.scrollTop = scroll;
    const mark = detailBody.querySelector("mark.syntax-error");
    if (mark && !keepScroll) mark.scrollIntoView({ block: "center" });
  } catch (err) {
    if (ticket !== detailRequest || err.name === "AbortError") return;
    const known = rows.get(id);
    const text = known && known.gone ? "This request is no longer stored." : err.message;
    detailBody.replaceChildren(el("p", { class: "placeholder" }, text));
  } finally {
    if (ticket === detailRequest) detailBody.classList.remove("loading");
  }
}

// The detail's "replay of" as a link to the original, and links to the replays seen here.
function linkReplays(detail) {
  const meta = detailBody.querySelector(".detail-meta");
  if (!meta) return;
  const replays = replaysOf.get(detail.id) || [];
  const links = el("span", { class: "replay-links" + (detail.replay_of ? " replay-of" : "") });
  if (detail.replay_of) {
    links.append("replay of", el("a", { href: "#" + detail.replay_of, class: "replay-of-link" }, detail.replay_of));
  }
  if (replays.length) {
    links.append(
      (detail.replay_of ? "; " : "") + "replayed as",
      ...replays.map((id) => el("a", { href: "#" + id, class: "replayed-as-link" }, id)),
    );
  }
  if (!links.childNodes.length) return;
  const old = meta.querySelector(".replay-of");
  if (old) old.replaceWith(links);
  else meta.append(links);
}

const detailLoads = burstScheduler((id) => {
  sheet.show(id, { open: false });
  loadDetail(id);
});

// source: "click" (from the list: on a narrow screen the sheet opens with a history entry),
// "hash" | "boot" | "replay" (open it, no entry), "key" | "follow" | "quiet" (the sheet shows it
// only when already open; keys load the detail once a burst of moves rests).
function select(id, { source = "click", repeat = false, scroll = true } = {}) {
  if (!id) return;
  const previous = selectedId && rows.get(selectedId);
  if (previous) previous.tr.classList.remove("selected");
  selectedId = id;
  const known = rows.get(id);
  if (known) {
    known.tr.classList.add("selected");
    if (scroll) known.tr.scrollIntoView({ block: "nearest" });
  }
  pinButton.disabled = deleteButton.disabled = false;
  pinButton.textContent = pins.has(id) ? "Unpin" : "Pin";
  if (source === "key") {
    detailLoads.schedule(id, { repeat });
    return;
  }
  detailLoads.cancel();
  sheet.show(id, { push: source === "click", open: !["follow", "quiet"].includes(source) });
  loadDetail(id);
}

function deselect() {
  const previous = selectedId && rows.get(selectedId);
  if (previous) previous.tr.classList.remove("selected");
  selectedId = null;
  detailLoads.cancel();
  pinButton.disabled = deleteButton.disabled = true;
  detailBody.replaceChildren(el("p", { class: "placeholder" }, "Select a request to see it here."));
  history.replaceState(null, "", location.pathname + location.search);
}

function orderedRows() {
  return [...pinnedBody.children, ...tbody.children];
}

function move(step, repeat = false) {
  const list = orderedRows();
  if (!list.length) return;
  const at = selectedId ? list.findIndex((tr) => tr.dataset.id === selectedId) : -1;
  let index = at === -1 ? (step > 0 ? 0 : list.length - 1) : at + step;
  if (index >= list.length) {
    if (nextBefore) loadOlderPage();
    index = list.length - 1;
  }
  index = Math.max(0, index);
  if (list[index].dataset.id !== selectedId) select(list[index].dataset.id, { source: "key", repeat });
}

function rowsPerScreen() {
  const row = tbody.firstElementChild || pinnedBody.firstElementChild;
  const height = row ? row.getBoundingClientRect().height || 24 : 24;
  return Math.max(1, Math.floor(listScroll.clientHeight / height) - 2);
}

// Whether the page wants a selected capture for this key, and says so when there is none.
function needSelection() {
  if (selectedId) return true;
  toast("Select a request first (j / k, or click one)");
  return false;
}

// --- actions -------------------------------------------------------------------------------
// Replay goes straight to the local service, as ngrok's inspector does; "through policy" runs the
// tunnel's Traffic Policy on it first (its on_http_request rules, as for a client on 127.0.0.1).
// The new capture is listed, marked as a replay of this one, and opened.
async function replay({ throughPolicy = false } = {}) {
  if (!needSelection()) return;
  const original = selectedId;
  try {
    const result = await sendJSON("POST", `/inspect/captures/${encodeURIComponent(original)}/replay`, {
      through_policy: throughPolicy,
    });
    showReplay(result.id, original, result.capture, throughPolicy ? "Replayed through the policy" : "Replayed");
  } catch (err) {
    toast("Replay failed: " + err.message, "error");
  }
}

function replayThroughPolicy() {
  return replay({ throughPolicy: true });
}

async function showReplay(newId, original, summary, verb) {
  replayOrigins.set(newId, original);
  let fresh = summary;
  if (!fresh) {
    try {
      fresh = (await fetchJSON(urls.captures + "?ids=" + encodeURIComponent(newId))).captures[0];
    } catch {
      fresh = null;
    }
  }
  const entry = fresh ? upsert({ ...fresh, replay_of: fresh.replay_of || original }, { force: true }) : null;
  updateFooter();
  select(newId, { source: "replay" });
  if (entry) {
    entry.tr.classList.remove("just-replayed");
    void entry.tr.offsetWidth; // restart the flash
    entry.tr.classList.add("just-replayed");
  }
  const status = fresh && fresh.status_code !== null ? `, ${fresh.status_code}` : "";
  toast(`${verb}: new capture ${newId}${status} (a replay of ${original})`);
}

function replayEdit() {
  if (!needSelection()) return;
  const original = selectedId;
  openReplayEditor(`/inspect/captures/${encodeURIComponent(original)}/replay-seed.json`, urls.replay, (newId) =>
    showReplay(newId, original, null, "Replayed with modifications"),
  );
}

async function curl() {
  if (!needSelection()) return;
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

async function deleteSelected() {
  if (!needSelection()) return;
  const id = selectedId;
  const list = orderedRows();
  const at = list.findIndex((tr) => tr.dataset.id === id);
  const next = list[at + 1] || list[at - 1] || null;
  try {
    await sendJSON("DELETE", `/inspect/captures/${encodeURIComponent(id)}`);
  } catch (err) {
    if (!/no capture/.test(err.message)) {
      toast("Delete failed: " + err.message, "error");
      return;
    }
  }
  deletedHere.add(id);
  const known = rows.get(id);
  pins.remove(id);
  if (known) {
    known.tr.remove();
    rows.delete(id);
  }
  toast(`Deleted ${known ? known.summary.method + " " + known.summary.uri : id}`);
  if (next && rows.has(next.dataset.id)) select(next.dataset.id, { source: "quiet" });
  else deselect();
  updateFooter();
  clear.refreshSoon();
}

function togglePin() {
  if (!needSelection()) return;
  const id = selectedId;
  const known = rows.get(id);
  if (pins.has(id)) {
    pins.remove(id);
    if (known) {
      known.tr.remove();
      rows.delete(id);
      if (!known.gone) upsert(known.summary, { force: true });
      const back = rows.get(id);
      if (back) back.tr.classList.add("selected");
    }
    toast("Unpinned");
  } else {
    if (!known) return;
    pins.add(known.summary);
    draw(known);
    pinnedBody.append(known.tr);
    toast("Pinned: it stays at the top of the list");
  }
  pinButton.textContent = pins.has(id) ? "Unpin" : "Pin";
  updateFooter();
}

// Show the pins kept in this browser (before the first page, which then updates them).
function showPins() {
  for (const summary of pins.summaries()) {
    const entry = { summary, tr: document.createElement("tr"), gone: false };
    rows.set(summary.id, entry);
    draw(entry);
    pinnedBody.append(entry.tr);
  }
}

// Pins refreshed from the store; those it no longer has are marked gone.
async function refreshPins() {
  const ids = pins.ids();
  if (!ids.length) return;
  try {
    const page = await fetchJSON(urls.captures + "?limit=500&ids=" + ids.map(encodeURIComponent).join(","));
    const found = new Set(page.captures.map((s) => s.id));
    for (const summary of page.captures) upsert(summary);
    for (const id of ids) if (!found.has(id)) forget(id);
  } catch {
    // shown as last seen
  }
  updateFooter();
}

function setPaused(value) {
  paused = value;
  pause.set(value);
  document.getElementById("pause-button").textContent = value ? "Resume" : "Pause";
  if (!value) {
    const waiting = [...held.values()];
    held.clear();
    for (const summary of waiting) upsert(summary);
    trimWindow();
  }
  updateFooter();
}

async function jumpTo(epoch) {
  if (sort !== DEFAULT_SORT) setSortState(DEFAULT_SORT);
  try {
    jumpedTo = epoch;
    const page = await reloadList({ at: String(epoch) });
    if (page.captures.length) select(page.captures[0].id, { source: "hash" });
    else toast("Nothing was captured at or before that time", "error");
  } catch (err) {
    jumpedTo = null;
    toast("Jump failed: " + err.message, "error");
  }
  updateFooter();
}

async function backToNewest() {
  jumpedTo = null;
  await reloadList();
}

function setSortState(value) {
  sort = value;
  history.replaceState(history.state, "", withSort(sort));
  const { column, descending } = parseSort(sort);
  for (const th of document.querySelectorAll("table.captures th[data-sort]")) {
    if (th.dataset.sort === column) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
}

// First click on a column: numbers and time largest first, text A to Z; again: the other way.
async function sortBy(column) {
  const current = parseSort(sort);
  let descending = ["time", "status", "duration", "size"].includes(column);
  if (current.column === column) descending = !current.descending;
  jumpedTo = null;
  setSortState((descending ? "-" : "") + column);
  try {
    await reloadList();
  } catch (err) {
    toast("Sorting failed: " + err.message, "error");
  }
}

function selectTab(number) {
  for (const bar of detailBody.querySelectorAll(".tabs")) {
    const tab = bar.querySelectorAll("[role=tab]")[number - 1];
    if (tab) tab.click();
  }
}

function focusSearch() {
  const box = document.getElementById("filter-q") || document.getElementById("filter-path");
  if (box) {
    box.focus();
    box.select();
  }
}

function showHelp() {
  document.getElementById("keys-dialog").showModal();
}

function escape() {
  if (sheet.isOpen) sheet.back();
  else if (selectedId) deselect();
}

// --- wiring --------------------------------------------------------------------------------
const clear = setupClear(document.getElementById("clear-button"), {
  filtered: boot.filters_active,
  filterQuery: boot.filter_query,
  urls,
  onCleared(result) {
    if (result.filtered) {
      for (const tr of [...tbody.children]) forget(tr.dataset.id);
      nextBefore = null;
      updateFooter();
      toast(`Cleared ${result.deleted} filtered capture${result.deleted === 1 ? "" : "s"}`);
    } else {
      onMessage({ type: "captures.cleared" });
      toast("Cleared every capture");
    }
  },
  onError: (message) => toast("Clear failed: " + message, "error"),
});

const pause = toggleButton(document.getElementById("pause-button"), setPaused);
toggleButton(document.getElementById("follow-button"), (on) => {
  following = on;
  if (on && !paused && jumpedTo === null && tbody.firstElementChild && sort === DEFAULT_SORT) {
    listScroll.scrollTop = 0;
    select(tbody.firstElementChild.dataset.id, { source: "follow" });
  }
});

const jumpInput = document.getElementById("jump-time");
jumpInput.addEventListener("focus", () => {
  if (jumpInput.value) return;
  const seed = (selectedId && rows.get(selectedId)) || rows.get(tbody.firstElementChild?.dataset.id);
  jumpInput.value = localInputValue(seed ? seed.summary.start : Date.now() / 1000);
});
document.getElementById("jump-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const epoch = epochOfLocalInput(jumpInput.value);
  if (epoch === null) toast("Give a date and time to jump to", "error");
  else jumpTo(epoch);
});

pinButton.addEventListener("click", togglePin);
deleteButton.addEventListener("click", deleteSelected);

for (const th of document.querySelectorAll("table.captures th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.sort));
}

// Filters: only non-empty parameters go into the address, and the open capture stays open.
const filterForm = document.getElementById("filters");
filterForm.addEventListener("submit", (event) => {
  event.preventDefault();
  location.assign(filterHref(filterForm.getAttribute("action"), new FormData(filterForm), { sort, hash: location.hash }));
});
for (const link of document.querySelectorAll("#filter-reset, #empty-state a[href]")) {
  if (link.closest("#tunnel-urls")) continue;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    location.assign(filterHref(filterForm.getAttribute("action"), [], { sort, hash: location.hash }));
  });
}

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

function onRowClick(event) {
  if (event.target.closest("a")) return; // replay links go by the address's hash
  const tr = event.target.closest("tr.capture-row");
  if (!tr) return;
  if (event.target.closest("button.pin")) {
    if (tr.dataset.id !== selectedId) select(tr.dataset.id, { source: "quiet", scroll: false });
    togglePin();
    return;
  }
  select(tr.dataset.id, { scroll: false });
}
tbody.addEventListener("click", onRowClick);
pinnedBody.addEventListener("click", onRowClick);
// How long ago, on hover.
listScroll.addEventListener("mouseover", (event) => {
  const cell = event.target.closest && event.target.closest("td.col-time");
  if (cell) titleOfTimeCell(cell);
});

loadOlder.addEventListener("click", loadOlderPage);
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadOlderPage();
}, { root: listScroll }).observe(loadOlder);

document.getElementById("sheet-back").addEventListener("click", () => sheet.back());
const moreFilters = document.getElementById("more-filters");
moreFilters.addEventListener("click", () => {
  moreFilters.setAttribute("aria-expanded", String(moreFilters.getAttribute("aria-expanded") !== "true"));
});

// The address names the open capture: a pasted #id opens it; Back from a sheet closes it.
function followAddress() {
  const id = hashId();
  if (!id) {
    sheet.closedByHistory();
    return;
  }
  if (id !== selectedId) select(id, { source: "hash" });
  else if (sheet.narrow && !sheet.isOpen) sheet.show(id);
}
window.addEventListener("hashchange", followAddress);
window.addEventListener("popstate", followAddress);

installKeys({
  move,
  first: () => {
    const first = orderedRows()[0];
    if (first) select(first.dataset.id, { source: "key" });
  },
  last: () => {
    const list = orderedRows();
    if (list.length) select(list[list.length - 1].dataset.id, { source: "key" });
  },
  page: (step, repeat) => move(step * rowsPerScreen(), repeat),
  tab: selectTab,
  replay: () => replay(),
  edit: replayEdit,
  curl,
  remove: deleteSelected,
  pin: togglePin,
  search: focusSearch,
  escape,
  help: showHelp,
  open: () => selectedId && select(selectedId, { source: "click", scroll: false }),
});

// --- start ---------------------------------------------------------------------------------
rememberTunnels();
setSortState(sort);
showPins();
for (const summary of boot.page.captures) upsert(summary, { force: true });
renderTunnels();
updateFooter();
refreshPins();
const fromHash = hashId();
if (fromHash) select(fromHash, { source: "boot" });
connectLive(urls.socket, onMessage, onState);
