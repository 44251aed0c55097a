// Draws one capture's detail: request and response side by side, each with Summary, Headers, Raw
// and Binary tabs, and copy buttons (URL, headers, body). Bodies are pretty-printed and checked on
// the server; JSON, XML and HTML are drawn highlighted and foldable by body_view.js.
import { codeView } from "./body_view.js";
import { bodyText, copyText } from "./clipboard.js";
import { el } from "./dom.js";
import { formatDuration, formatSize, formatTime, statusClass } from "./format.js";
import { webhookTools } from "./webhook_tools.js";
import { websocketSection } from "./websocket_view.js";

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
      webhookTools(detail), // copy as fetch/HTTPie/requests, diff, replay with re-signing
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
  // DOM append() would print a missing part as "null": only what is there goes in.
  container.append(...[head, ...banners, renderPolicy(detail.traffic_policy || []), websocketSection(detail), panes].filter(Boolean));
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
  section.append(el("h3", {}, title), copyTools(side, message), tabBar, body);
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

// Views whose body is text a person may want to paste somewhere.
const TEXT_VIEWS = new Set(["json", "xml", "html", "text", "form", "multipart"]);

export function headersText(message) {
  return message.headers.map(([name, value]) => `${name}: ${value}`).join("\n");
}

function copyTools(side, message) {
  const tools = el("div", { class: "copy-tools" });
  if (side === "request" && message.url) {
    tools.append(
      el("button", { type: "button", class: "copy-url", title: message.url, dataset: { copy: message.url }, onclick: () => copyText(message.url, "URL") }, "Copy URL"),
    );
  }
  const headers = headersText(message);
  tools.append(
    el("button", { type: "button", class: "copy-headers", dataset: { copy: headers }, onclick: () => copyText(headers, "Headers") }, "Copy headers"),
  );
  if (TEXT_VIEWS.has(message.body_view.view)) {
    // The whole body (content coding undone), fetched when asked: the view may show only its start.
    tools.append(
      el(
        "button",
        {
          type: "button",
          class: "copy-body",
          dataset: { url: message.urls.body },
          title: "Copy the whole body (decoded), not only what is drawn",
          onclick: () => copyText(bodyText(message.urls.body, message.content_type), "Body"),
        },
        "Copy body",
      ),
    );
  }
  return tools;
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
    // A form body's fields are its body view already (a table of fields or of parts).
    if (message.form && message.form.length && !["form", "multipart"].includes(message.body_view.view)) {
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
    // el() drops a missing note; DOM append() would print it as "null".
    pane.append(
      el(
        "div",
        { class: "binary-view" },
        el("p", { class: "size-line" }, `${bytes(message.body_size)} of body as it crossed, 8 bytes a line`),
        message.hex.note ? el("p", { class: "note" }, message.hex.note) : null,
        el("pre", { class: "hex" }, message.hex.text || "(no body)"),
      ),
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
    case "html":
      return codeView(view);
    case "form":
      return pairTable(view.fields, "form-table");
    case "multipart":
      return multipartTable(view.parts);
    case "image":
      return el("img", { class: "body-image", src: message.urls.body, alt: "image body (" + view.mime_type + ")" });
    case "text":
      return el("div", {}, view.note ? el("p", { class: "note" }, view.note) : null, el("pre", { class: "body-text" }, view.text));
    default:
      return el("div", {}, view.note ? el("p", { class: "note" }, view.note) : null, el("pre", { class: "hex" }, view.text));
  }
}

// multipart/form-data: one row a part (name, file name, content type, size) with its download.
function multipartTable(parts) {
  if (!parts.length) return el("p", { class: "muted" }, "No multipart part could be read (no boundary found).");
  return el(
    "table",
    { class: "pairs multipart-table" },
    el(
      "thead",
      {},
      el("tr", {}, el("th", {}, "Name"), el("th", {}, "File name"), el("th", {}, "Content type"), el("th", {}, "Size"), el("th", {}, "")),
    ),
    el(
      "tbody",
      {},
      parts.map((part) =>
        el(
          "tr",
          { class: "multipart-part", dataset: { index: String(part.index) } },
          el("th", { class: "part-name" }, part.name),
          el("td", { class: "part-filename" }, part.filename ?? ""),
          el("td", { class: "part-type" }, part.content_type || (part.filename === null ? "text" : "")),
          el(
            "td",
            { class: "part-size", title: `${part.size} bytes` },
            formatSize(part.size),
            part.complete ? null : el("span", { class: "note" }, " (cut: only these bytes were captured)"),
          ),
          el(
            "td",
            { class: "part-download" },
            part.download
              ? el("a", { href: part.download, download: part.filename || "", class: "download-part" }, "Download")
              : null,
          ),
        ),
      ),
    ),
    parts.some((part) => part.value !== null)
      ? el(
          "tbody",
          { class: "part-values" },
          parts
            .filter((part) => part.value !== null)
            .map((part) => el("tr", {}, el("th", {}, part.name), el("td", { colspan: "4", class: "part-value" }, part.value))),
        )
      : null,
  );
}
