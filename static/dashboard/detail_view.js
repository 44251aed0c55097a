// Draws one capture's detail: request and response side by side, each with Summary, Headers, Raw
// and Binary tabs. Everything is pretty-printed on the server; this only lays it out.
import { el } from "./dom.js";
import { formatDuration, formatTime, statusClass } from "./format.js";

const TABS = ["Summary", "Headers", "Raw", "Binary"];
const chosenTab = { request: "Summary", response: "Summary" };

export function renderDetail(container, detail, actions) {
  container.replaceChildren();
  const status = detail.status_code;
  const head = el(
    "div",
    { class: "detail-head" },
    el(
      "div",
      { class: "detail-title" },
      el("span", { class: "method" }, detail.method),
      " ",
      el("span", { class: "uri", title: detail.uri }, detail.uri),
      " ",
      el("span", { class: "status " + statusClass(status) }, status === null ? "pending" : String(status)),
      answeredBy(detail.traffic_policy),
    ),
    el(
      "div",
      { class: "detail-meta" },
      el("span", {}, formatDuration(detail.duration_ns)),
      el("span", {}, formatTime(detail.start)),
      el("span", {}, "tunnel " + detail.tunnel_name),
      el("span", {}, "from " + detail.remote_addr),
      detail.replay_of ? el("span", { class: "replay-of" }, "replay of " + detail.replay_of) : null,
    ),
    el(
      "div",
      { class: "detail-actions" },
      el("button", { type: "button", id: "replay-button", onclick: () => actions.replay(), title: "Replay (r)" }, "Replay"),
      el(
        "button",
        {
          type: "button",
          id: "replay-policy-button",
          onclick: actions.replayThroughPolicy,
          title: "Replay, running the tunnel's Traffic Policy on it first (plain Replay bypasses it, as ngrok's does)",
        },
        "Replay through policy",
      ),
      el(
        "button",
        { type: "button", id: "replay-edit-button", onclick: actions.replayEdit, title: "Replay with modifications (e)" },
        "Replay with modifications",
      ),
      el("button", { type: "button", id: "curl-button", onclick: actions.curl }, "Copy as curl"),
      el("a", { class: "button", href: detail.urls.har, download: detail.id + ".har", id: "har-one" }, "HAR"),
    ),
  );
  // Capture truth first: a side that did not cross whole, or bytes that were not kept.
  const banners = (detail.banners || []).map((banner) =>
    el("p", { class: "banner " + banner.kind, "data-side": banner.side, role: "status" }, banner.text),
  );
  const panes = el(
    "div",
    { class: "messages" },
    renderMessage("request", detail.request),
    detail.response
      ? renderMessage("response", detail.response)
      : el("section", { class: "message response pending-message" }, el("h3", {}, "Response"), el("p", {}, "Waiting for the response…")),
  );
  container.append(head, ...banners, renderPolicy(detail.traffic_policy || []), panes);
}

// The step that answered instead of the service: the last terminal one (the answer the client saw).
function terminalStep(steps) {
  return [...(steps || [])].reverse().find((step) => step.terminal) || null;
}

function answeredBy(steps) {
  const step = terminalStep(steps);
  if (!step) return null;
  return el("span", { class: "policy-mark", title: "answered by the Traffic Policy, not the service" }, "blocked by policy: " + step.action);
}

// What the endpoint's Traffic Policy did, action by action, in the order they ran. Nothing at all
// when no action ran (no policy, or no rule matched).
function renderPolicy(steps) {
  if (!steps.length) return null;
  const answer = terminalStep(steps);
  return el(
    "section",
    { class: "traffic-policy", "aria-label": "Traffic Policy" },
    el("h3", {}, "Traffic Policy"),
    el(
      "table",
      { class: "policy-trace" },
      el("thead", {}, el("tr", {}, el("th", {}, "Phase"), el("th", {}, "Rule"), el("th", {}, "Action"), el("th", {}, "Outcome"))),
      el(
        "tbody",
        {},
        steps.map((step) =>
          el(
            "tr",
            { class: "policy-step" + (step.terminal ? " terminal" : "") },
            el("td", { class: "policy-phase" }, step.phase),
            el("td", { class: "policy-rule" }, step.rule || el("span", { class: "muted" }, "(unnamed)")),
            el("td", { class: "policy-action" }, el("code", {}, step.action)),
            el(
              "td",
              { class: "policy-outcome" },
              step.outcome,
              step.terminal
                ? el("span", { class: "terminal-mark" }, step === answer ? " ■ answered the request" : " ■ ended the phase")
                : null,
            ),
          ),
        ),
      ),
    ),
  );
}

function renderMessage(side, message) {
  const section = el("section", { class: "message " + side, "data-side": side });
  const tabBar = el("div", { class: "tabs", role: "tablist" });
  const body = el("div", { class: "tab-body" });
  const title = side === "request" ? "Request" : "Response";
  section.append(el("h3", {}, title), tabBar, body);
  function show(name) {
    chosenTab[side] = name;
    for (const button of tabBar.children) button.setAttribute("aria-selected", String(button.dataset.tab === name));
    body.replaceChildren(renderTab(name, side, message));
  }
  for (const name of TABS) {
    tabBar.append(
      el(
        "button",
        { type: "button", role: "tab", class: "tab", dataset: { tab: name }, onclick: () => show(name) },
        name,
      ),
    );
  }
  show(chosenTab[side]);
  return section;
}

function bytes(count) {
  return count === 1 ? "1 byte" : `${count} bytes`;
}

function sizeLine(message) {
  const parts = [];
  if (message.content_encoding) {
    // Wire size (content coding kept) next to the decoded size.
    parts.push(`${bytes(message.body_size)} on the wire (${message.content_encoding})`);
    if (message.decoded_size !== null && message.decoded_size !== undefined) {
      parts.push(message.decoded_cut ? `${bytes(message.decoded_size)} decoded (cut there)` : `${bytes(message.decoded_size)} decoded`);
    }
  } else {
    parts.push(bytes(message.body_size));
  }
  if (message.content_type) parts.push(message.content_type);
  if (message.filename) parts.push(`file name ${message.filename}`);
  const line = el("p", { class: "size-line" }, parts.join(", "));
  const notes = [];
  if (message.truncated) {
    notes.push(
      el(
        "p",
        { class: "note truncated" },
        `captured ${message.captured} of ${message.size} bytes (the rest went through uncaptured)`,
      ),
    );
  }
  for (const note of message.notes || []) notes.push(el("p", { class: "note" }, note));
  return [line, ...notes];
}

function startLine(side, message) {
  if (side === "request") return `${message.method} ${message.target} ${message.version}`;
  return `${message.version} ${message.status} ${message.reason}`.trim();
}

function renderTab(name, side, message) {
  const pane = el("div", { class: "tab-pane", "data-pane": name });
  if (name === "Summary") {
    pane.append(el("p", { class: "start-line" }, startLine(side, message)), ...sizeLine(message));
    if (message.query && message.query.length) {
      pane.append(el("h4", {}, "Query parameters"), pairTable(message.query, "query-table"));
    }
    if (message.form && message.form.length) {
      pane.append(el("h4", {}, "Form fields"), pairTable(message.form, "form-table"));
    }
    pane.append(el("h4", {}, "Body"), renderBody(message.body_view, message));
  } else if (name === "Headers") {
    pane.append(el("p", { class: "start-line" }, startLine(side, message)), pairTable(message.headers, "headers-table"));
  } else if (name === "Raw") {
    pane.append(
      el(
        "p",
        { class: "tab-tools" },
        el("a", { href: message.urls.raw, download: "", class: "download-raw" }, `Download raw ${side}`),
        message.raw_note ? el("span", { class: "note" }, " " + message.raw_note) : null,
      ),
      el("pre", { class: "raw" }, message.raw),
    );
  } else {
    pane.append(
      el("p", { class: "size-line" }, `${message.body_size} bytes of body, 8 bytes a line`),
      message.hex.note ? el("p", { class: "note" }, message.hex.note) : null,
      el("pre", { class: "hex" }, message.hex.text || "(no body)"),
    );
  }
  return pane;
}

function pairTable(pairs, className) {
  return el(
    "table",
    { class: "pairs " + className },
    el(
      "tbody",
      {},
      pairs.map(([name, value]) => el("tr", {}, el("th", {}, name), el("td", {}, value))),
    ),
  );
}

function renderBody(view, message) {
  switch (view.view) {
    case "empty":
      return el("p", { class: "muted" }, "No body");
    case "json":
    case "xml":
      return codeBlock(view);
    case "form":
      return pairTable(view.fields, "form-table");
    case "multipart":
      return el(
        "table",
        { class: "pairs multipart-table" },
        el(
          "tbody",
          {},
          view.parts.map((part) =>
            el(
              "tr",
              {},
              el("th", {}, part.name),
              el(
                "td",
                {},
                part.value !== null
                  ? part.value
                  : `${part.filename ? "file " + part.filename + ", " : ""}${part.content_type || "binary"}, ${part.size} bytes`,
              ),
            ),
          ),
        ),
      );
    case "image":
      return el("img", { class: "body-image", src: message.urls.body, alt: "image body (" + view.mime_type + ")" });
    case "text":
      return el("div", {}, view.note ? el("p", { class: "note" }, view.note) : null, el("pre", { class: "body-text" }, view.text));
    default:
      return el("div", {}, view.note ? el("p", { class: "note" }, view.note) : null, el("pre", { class: "hex" }, view.text));
  }
}

// Pretty JSON/XML, or the text with the syntax error's spot marked.
function codeBlock(view) {
  const wrap = el("div", { class: "code-view " + view.view });
  if (view.note) wrap.append(el("p", { class: "note" }, view.note));
  if (!view.error) {
    wrap.append(el("pre", { class: "pretty " + view.view }, view.text));
    return wrap;
  }
  const { message, line, column, offset } = view.error;
  wrap.append(
    el("p", { class: "syntax-error-message" }, `${view.view.toUpperCase()} syntax error at line ${line}, column ${column}: ${message}`),
  );
  const text = view.text;
  const at = Math.min(offset, text.length);
  const mark = el("mark", { class: "syntax-error" }, at < text.length ? text[at] : "\u2038");
  wrap.append(el("pre", { class: "invalid " + view.view }, text.slice(0, at), mark, text.slice(at + 1)));
  return wrap;
}
