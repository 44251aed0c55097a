// The diff page: two captures side by side (A left, B right), request then response, each with its
// start line, headers by name and body (JSON compared as JSON: the changed values by path, then the
// pretty-printed lines). The diff is computed on the server (capture_diff.py); this draws it.
import { el } from "./dom.js";
import { formatDuration } from "./duration.js";

const CHANGE_LABEL = { same: "", changed: "changed", added: "only in B", removed: "only in A" };

export function renderDiff(container, diff) {
  container.replaceChildren(
    el("div", { class: "diff-captures" }, captureHead("A", diff.a), captureHead("B", diff.b)),
    ...diff.notes.map((note) => el("p", { class: "note" }, note)),
    renderSide("Request", diff.request),
    diff.response ? renderSide("Response", diff.response) : null,
  );
}

function captureHead(label, capture) {
  const status = capture.status_code === null ? "pending" : String(capture.status_code);
  return el(
    "div",
    { class: "diff-capture", "data-side": label.toLowerCase() },
    el("strong", {}, label + " "),
    el("a", { href: "/inspect/http#" + capture.id, class: "capture-id" }, capture.id),
    el("div", { class: "diff-capture-line" }, capture.method + " " + capture.uri + " → " + status),
    el(
      "div",
      { class: "muted small" },
      formatDuration(capture.duration_ns),
      " · tunnel " + capture.tunnel_name,
      capture.replay_of ? " · replay of " + capture.replay_of : "",
    ),
  );
}

function renderSide(title, side) {
  const changed = side.headers.filter((row) => row.change !== "same").length;
  return el(
    "section",
    { class: "diff-side" + (side.same ? " same" : ""), "data-part": title.toLowerCase() },
    el("h2", {}, title, el("span", { class: "diff-verdict" }, side.same ? "the same" : "different")),
    el(
      "div",
      { class: "diff-start" + (side.start_line.same ? "" : " changed") },
      el("code", { class: "a" }, side.start_line.a),
      el("code", { class: "b" }, side.start_line.b),
    ),
    el("h3", {}, "Headers ", el("span", { class: "muted small" }, changed ? changed + " differ" : "all the same")),
    el(
      "table",
      { class: "diff-headers" },
      el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "A"), el("th", {}, "B"))),
      el(
        "tbody",
        {},
        side.headers.map((row) =>
          el(
            "tr",
            { class: "change-" + row.change, title: CHANGE_LABEL[row.change] },
            el("th", {}, row.name),
            el("td", { class: "a" }, row.a.join("\n")),
            el("td", { class: "b" }, row.b.join("\n")),
          ),
        ),
      ),
    ),
    renderBody(side.body),
  );
}

function renderBody(body) {
  const sizes = body.a_size === body.b_size ? body.a_size + " bytes" : body.a_size + " → " + body.b_size + " bytes";
  const head = el("h3", {}, "Body ", el("span", { class: "muted small" }, body.kind + ", " + sizes));
  if (body.kind === "empty") return el("div", { class: "diff-body" }, head, el("p", { class: "muted" }, "Neither has a body."));
  if (body.same) {
    const why = body.kind === "json" && body.a_size !== body.b_size ? " (the same JSON, spelled differently)" : "";
    return el("div", { class: "diff-body" }, head, el("p", { class: "diff-same" }, "The bodies are the same" + why + "."));
  }
  if (body.kind === "binary") {
    return el(
      "div",
      { class: "diff-body" },
      head,
      el("p", {}, "Binary bodies differ from byte " + body.first_difference + "."),
      el("p", { class: "muted small" }, "SHA-256 A " + body.sha256[0]),
      el("p", { class: "muted small" }, "SHA-256 B " + body.sha256[1]),
    );
  }
  return el(
    "div",
    { class: "diff-body" },
    head,
    body.kind === "json" ? jsonChanges(body) : null,
    body.cut ? el("p", { class: "note" }, "Only the first 256 KiB of each body are compared line by line.") : null,
    lineTable(body.hunks),
  );
}

function jsonChanges(body) {
  return el(
    "table",
    { class: "diff-json-changes" },
    el("thead", {}, el("tr", {}, el("th", {}, "Path"), el("th", {}, "A"), el("th", {}, "B"))),
    el(
      "tbody",
      {},
      body.changes.map((change) =>
        el(
          "tr",
          { class: "change-" + change.change },
          el("th", {}, el("code", {}, change.path)),
          el("td", { class: "a" }, change.a === null ? "—" : change.a),
          el("td", { class: "b" }, change.b === null ? "—" : change.b),
        ),
      ),
      body.more_changes
        ? el("tr", {}, el("td", { colspan: 3, class: "muted" }, "… and " + body.more_changes + " more changes"))
        : null,
    ),
  );
}

// Side-by-side lines: each hunk's rows, the shorter side of a replacement padded with blank cells.
function lineTable(hunks) {
  const rows = [];
  for (const [index, hunk] of hunks.entries()) {
    if (index > 0 || hunk.a_start > 1) rows.push(el("tr", { class: "skip" }, el("td", { colspan: 4 }, "⋯")));
    let lineA = hunk.a_start;
    let lineB = hunk.b_start;
    for (const row of hunk.rows) {
      const length = Math.max(row.a.length, row.b.length);
      for (let i = 0; i < length; i += 1) {
        const hasA = i < row.a.length;
        const hasB = i < row.b.length;
        rows.push(
          el(
            "tr",
            { class: "op-" + row.op },
            el("td", { class: "line-no" }, hasA ? String(lineA + i) : ""),
            el("td", { class: "a" + (hasA ? "" : " blank") }, hasA ? row.a[i] : ""),
            el("td", { class: "line-no" }, hasB ? String(lineB + i) : ""),
            el("td", { class: "b" + (hasB ? "" : " blank") }, hasB ? row.b[i] : ""),
          ),
        );
      }
      lineA += row.a.length;
      lineB += row.b.length;
    }
  }
  return el("table", { class: "diff-lines" }, el("tbody", {}, rows));
}

function start() {
  const bootNode = document.getElementById("diff-boot");
  if (!bootNode) return;
  const boot = JSON.parse(bootNode.textContent);
  const live = document.getElementById("live-state");
  if (live) live.hidden = true; // this page has no live stream
  const container = document.getElementById("diff");
  if (boot.error) {
    container.replaceChildren(el("p", { class: "dialog-error", role: "alert" }, boot.error));
    return;
  }
  renderDiff(container, boot.diff);
  const only = document.getElementById("only-changes");
  only.addEventListener("change", () => container.classList.toggle("only-changes", only.checked));
}

start();
