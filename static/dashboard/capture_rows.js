// One capture as a row of the inspector's list, and the list's order.
//
// Rules:
// - Columns: pin, time (absolute, to the millisecond, local time; how long ago on hover), tunnel
//   (its public URL's host on hover), method, path (the URI alone, as sent), status (with the
//   replay, capture-truth and policy marks after it), duration, response size.
// - A replay links to its original (↻, a link to #original) and an original to its newest
//   replay in the list (↻N), so following either is a click; both are plain #id links, so the
//   page's hash handling opens them.
// - The order is the server's (dashboard/inspector/capture_list.py): a column ascending or
//   descending, ties by id in the same direction, pending rows (no status or size) last.
import { el } from "./dom.js";
import { formatAgo, formatDuration, formatSize, statusClass } from "./format.js";

const pad = (number, width = 2) => String(number).padStart(width, "0");

// 14:03:07.123 in local time.
export function formatClock(epochSeconds) {
  const at = new Date(epochSeconds * 1000);
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

// "3s ago · 2025-03-01 14:03:07.123": the hover text of the time cell.
export function timeTitle(epochSeconds, now = Date.now() / 1000) {
  const at = new Date(epochSeconds * 1000);
  const day = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
  return `${formatAgo(epochSeconds, now)} · ${day} ${formatClock(epochSeconds)}`;
}

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

function replayMarks(summary, replays) {
  const marks = [];
  if (summary.replay_of) {
    marks.push(
      el(
        "a",
        { class: "replay-mark", href: "#" + summary.replay_of, title: `replay of ${summary.replay_of}: open the original`, dataset: { replayOf: summary.replay_of } },
        "↻",
      ),
    );
  }
  if (replays && replays.length) {
    const newest = replays[replays.length - 1];
    marks.push(
      el(
        "a",
        {
          class: "replayed-mark",
          href: "#" + newest,
          title: `replayed ${replays.length} time${replays.length === 1 ? "" : "s"}: open the newest replay (${newest})`,
          dataset: { replays: replays.join(",") },
        },
        "↻" + replays.length,
      ),
    );
  }
  return marks;
}

// Fill `tr` for `summary`. `context`: {selected, pinned, replays (ids of its replays, oldest
// first), host (of its tunnel's public URL)}.
export function fillRow(tr, summary, context = {}) {
  const code = summary.status_code;
  tr.className =
    "capture-row" +
    (context.selected ? " selected" : "") +
    (summary.replay_of ? " replay" : "") +
    (context.gone ? " gone" : "");
  tr.dataset.id = summary.id;
  tr.title = context.gone ? "no longer stored (kept because it is pinned)" : "";
  const tunnelTitle = context.host ? `${summary.tunnel_name} · ${context.host}` : summary.tunnel_name;
  tr.replaceChildren(
    el(
      "td",
      { class: "col-pin" },
      el(
        "button",
        {
          type: "button",
          class: "pin",
          "aria-pressed": context.pinned ? "true" : "false",
          "aria-label": context.pinned ? "Unpin" : "Pin",
          title: context.pinned ? "Unpin (p)" : "Pin: keep it at the top of the list (p)",
        },
        context.pinned ? "★" : "☆",
      ),
    ),
    el("td", { class: "col-time", dataset: { start: summary.start } }, formatClock(summary.start)),
    el("td", { class: "col-tunnel", title: tunnelTitle }, summary.tunnel_name),
    el("td", { class: "col-method" }, summary.method),
    el("td", { class: "col-path", title: summary.uri }, summary.uri),
    el(
      "td",
      { class: "col-status" },
      el("span", { class: "status " + statusClass(code) }, code === null ? "…" : String(code)),
      ...replayMarks(summary, context.replays),
      truthMark(summary),
      policyMark(summary),
    ),
    el("td", { class: "col-duration" }, code === null ? "" : formatDuration(summary.duration_ns)),
    el("td", { class: "col-size" }, formatSize(summary.response_size)),
  );
}

const SORT_VALUE = {
  time: (s) => s.id,
  tunnel: (s) => s.tunnel_name,
  method: (s) => s.method,
  path: (s) => s.uri,
  status: (s) => s.status_code,
  duration: (s) => s.duration_ns,
  size: (s) => s.response_size,
};

export const SORT_COLUMNS = Object.keys(SORT_VALUE);

// {column, descending} of a `sort` parameter ("-time", "size"...).
export function parseSort(text) {
  const descending = (text || "-time").startsWith("-");
  const column = (text || "-time").replace(/^-/, "");
  return { column: SORT_VALUE[column] ? column : "time", descending };
}

// Whether `a` is listed before `b` in `sort` order.
export function comesBefore(a, b, sort) {
  const { column, descending } = parseSort(sort);
  if (column !== "time") {
    const va = SORT_VALUE[column](a);
    const vb = SORT_VALUE[column](b);
    const aPending = va === null || va === undefined;
    const bPending = vb === null || vb === undefined;
    if (aPending !== bPending) return bPending;
    if (!aPending && va !== vb) return descending ? va > vb : va < vb;
  }
  return descending ? a.id > b.id : a.id < b.id;
}

// Whether a change from `before` to `after` shows in the row (or moves it in `sort` order).
export function rowChanged(before, after) {
  return [
    "status_code",
    "duration_ns",
    "response_size",
    "request_size",
    "request_complete",
    "response_complete",
    "truncated",
    "policy_action",
    "replay_of",
  ].some((key) => before[key] !== after[key]);
}

export function titleOfTimeCell(cell) {
  cell.title = timeTitle(Number(cell.dataset.start));
}
