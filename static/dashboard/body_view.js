// JSON, XML and HTML bodies drawn highlighted and foldable.
//
// Rules:
// - The server pretty-prints and checks the syntax over the whole body; this only draws the text it
//   sends (already cut to what is worth drawing) and says what the server said ("showing the first
//   N...", "syntax checked over all N bytes").
// - Highlighting is highlight.js (static/vendor/highlight, BSD-3-Clause), JSON and XML grammars
//   (XML's covers HTML). Its HTML output is parsed in an inert <template> and rebuilt from text
//   nodes and `hljs-*` class names only: no captured byte is ever inserted as markup.
// - Lines are drawn (and highlighted) CHUNK at a time as they scroll into view: drawing and laying
//   out 50,000 lines at once took seconds (highlight.js alone ~9 ms a KB in Chromium).
// - Folding is by indentation, as editors fold pretty-printed text: a line folds the lines after it
//   that are indented deeper (the closing bracket or tag stays). A fold inside a folded region keeps
//   its state when the outer one opens. Fold marks, line numbers and the "⋯ N lines" note are CSS
//   generated content, so the text copied or read from the <pre> is the body's text.
import hljs from "../vendor/highlight/core.min.js";
import json from "../vendor/highlight/languages/json.min.js";
import xml from "../vendor/highlight/languages/xml.min.js";
import { el } from "./dom.js";

hljs.registerLanguage("json", json);
hljs.registerLanguage("xml", xml);

// Lines drawn at once, and by the "more" button.
export const CHUNK = 500;
const MORE = 5000;
const LANGUAGE = { json: "json", xml: "xml", html: "xml" };

// The stylesheets this view needs, added once: the theme as the OS prefers it, and the fold marks.
function ensureStyles() {
  if (document.getElementById("body-view-styles")) return;
  const base = new URL("../", import.meta.url).href;
  document.head.append(
    el("link", { rel: "stylesheet", id: "body-view-styles", href: base + "dashboard/body_view.css" }),
    el("link", { rel: "stylesheet", href: base + "vendor/highlight/github.min.css", media: "not all and (prefers-color-scheme: dark)" }),
    el("link", { rel: "stylesheet", href: base + "vendor/highlight/github-dark.min.css", media: "(prefers-color-scheme: dark)" }),
  );
}

// The text as lines, each a list of nodes (strings, or spans with hljs-* classes).
export function highlightedLines(text, kind) {
  const lines = [[]];
  const push = (segment, className) => {
    if (!segment) return;
    lines[lines.length - 1].push(className ? el("span", { class: className }, segment) : segment);
  };
  const addText = (data, className) => {
    const pieces = data.split("\n");
    pieces.forEach((piece, index) => {
      if (index > 0) lines.push([]);
      push(piece, className);
    });
  };
  let html = null;
  if (LANGUAGE[kind]) {
    try {
      html = hljs.highlight(text, { language: LANGUAGE[kind], ignoreIllegals: true }).value;
    } catch {
      html = null; // drawn plain
    }
  }
  if (html === null) {
    addText(text, "");
    return lines;
  }
  const template = document.createElement("template");
  template.innerHTML = html;
  const walk = (node, className) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        addText(child.data, className);
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        const own = [...child.classList].filter((name) => /^hljs-[\w-]+$/.test(name) || /^[\w-]+_$/.test(name));
        walk(child, [className, ...own].filter(Boolean).join(" "));
      }
    }
  };
  walk(template.content, "");
  return lines;
}

// Indentation of a line of text; -1 for a blank line.
function indentOf(line) {
  const match = /^[ \t]*/.exec(line);
  return match[0].length === line.length ? -1 : match[0].length;
}

// Where each foldable line's region ends (index of its last line), or -1.
export function foldRegions(indents) {
  const ends = new Array(indents.length).fill(-1);
  const open = []; // stack of line indexes whose region is still open
  for (let i = 0; i < indents.length; i += 1) {
    if (indents[i] < 0) continue; // blank lines belong to whatever region holds them
    while (open.length && indents[open[open.length - 1]] >= indents[i]) {
      const start = open.pop();
      ends[start] = lastNonBlank(indents, start, i - 1);
    }
    open.push(i);
  }
  while (open.length) {
    const start = open.pop();
    ends[start] = lastNonBlank(indents, start, indents.length - 1);
  }
  for (let i = 0; i < ends.length; i += 1) if (ends[i] <= i) ends[i] = -1;
  return ends;
}

function lastNonBlank(indents, start, end) {
  let last = end;
  while (last > start && indents[last] < 0) last -= 1;
  return last;
}

// The <pre> of a highlighted, foldable body (and the button that draws more of it). Lines are
// drawn CHUNK at a time (highlighted a chunk at a time: a pretty-printed line never continues a
// token of the line before, and XML that does is at worst drawn plain from there), the next chunk
// when the end of the <pre> scrolls into view or the button asks, and all of a region before it is
// folded. `firstLine`: the number of the text's first line.
export function foldableCode(text, kind, firstLine = 1) {
  ensureStyles();
  const texts = text.split("\n");
  const indents = texts.map(indentOf);
  const ends = foldRegions(indents);
  const pre = el("pre", { class: `pretty ${kind} foldable`, "data-lines": String(texts.length) });
  const rows = [];
  const more = el("button", { type: "button", class: "more-lines" });
  const moreLine = el("p", { class: "more-lines-line muted" }, more);
  const sentinel = el("span", { class: "more-sentinel" });

  const drawUpTo = (count) => {
    const target = Math.min(count, texts.length);
    while (rows.length < target) {
      const from = rows.length;
      const to = Math.min(from + CHUNK, texts.length);
      const lines = highlightedLines(texts.slice(from, to).join("\n"), kind);
      for (let index = from; index < to; index += 1) {
        const row = el("span", { class: "line", "data-n": String(firstLine + index) });
        if (ends[index] >= 0) {
          row.classList.add("foldable-line");
          row.append(el("span", { class: "fold", role: "button", "aria-expanded": "true", title: "Fold (Alt+click: every line at this depth)" }));
        } else {
          row.append(el("span", { class: "fold-space" }));
        }
        row.append(...(lines[index - from] || []));
        // The line's end in a span of its own, so a fold's note can be drawn before it.
        row.append(el("span", { class: "eol" }, index < texts.length - 1 ? "\n" : ""));
        rows.push(row);
      }
      sentinel.before(...rows.slice(from, to));
    }
    moreLine.hidden = rows.length >= texts.length;
    more.textContent = `Draw ${Math.min(MORE, texts.length - rows.length).toLocaleString()} more lines (${rows.length.toLocaleString()} of ${texts.length.toLocaleString()} drawn)`;
  };
  pre.append(sentinel);
  more.addEventListener("click", () => drawUpTo(rows.length + MORE));
  drawUpTo(CHUNK);
  if (rows.length < texts.length && "IntersectionObserver" in window) {
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) drawUpTo(rows.length + CHUNK);
        if (rows.length >= texts.length) observer.disconnect();
      },
      { root: pre, rootMargin: "0px 0px 400px 0px" },
    );
    observer.observe(sentinel);
  }

  pre.addEventListener("click", (event) => {
    const mark = event.target.closest("span.fold");
    if (!mark) return;
    const index = rows.indexOf(mark.parentElement);
    const fold = !rows[index].classList.contains("folded");
    if (event.altKey) {
      const depth = indents[index];
      drawUpTo(texts.length);
      rows.forEach((other, i) => {
        if (ends[i] >= 0 && indents[i] === depth) markFolded(rows[i], ends[i] - i, fold);
      });
      refresh(rows, ends, 0, rows.length - 1, false);
    } else {
      drawUpTo(ends[index] + 1);
      setFolded(rows, ends, index, fold);
    }
  });
  pre.foldAll = (fold) => {
    if (fold) drawUpTo(texts.length);
    for (let i = 0; i < rows.length; i += 1) if (ends[i] >= 0) markFolded(rows[i], ends[i] - i, fold);
    refresh(rows, ends, 0, rows.length - 1, false);
  };
  pre.moreLine = moreLine;
  return pre;
}

function markFolded(row, count, fold) {
  row.classList.toggle("folded", fold);
  row.querySelector("span.fold").setAttribute("aria-expanded", String(!fold));
  const end = row.lastElementChild; // span.eol
  if (fold) {
    row.dataset.folded = end.dataset.folded = `⋯ ${count} line${count === 1 ? "" : "s"}`;
  } else {
    delete row.dataset.folded;
    delete end.dataset.folded;
  }
}

function setFolded(rows, ends, index, fold) {
  markFolded(rows[index], ends[index] - index, fold);
  refresh(rows, ends, index + 1, ends[index], fold || rows[index].hidden);
}

// Show or hide rows[from..to] as their own folds say; `hidden`: the region is inside a fold.
function refresh(rows, ends, from, to, hidden) {
  let i = from;
  while (i <= to && i < rows.length) {
    rows[i].hidden = hidden;
    if (ends[i] >= 0 && (hidden || rows[i].classList.contains("folded"))) {
      for (let k = i + 1; k <= ends[i] && k < rows.length; k += 1) rows[k].hidden = true;
      i = ends[i] + 1;
    } else {
      i += 1;
    }
  }
}

// The whole code view of a json/xml/html body: notes, fold buttons, the <pre>; or, when the
// syntax check failed, the text with the error's spot marked.
export function codeView(view) {
  ensureStyles();
  const wrap = el("div", { class: "code-view " + view.view });
  if (view.note) wrap.append(el("p", { class: "note" }, view.note));
  if (view.checked) wrap.append(el("p", { class: "checked muted" }, view.checked));
  if (view.error) {
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
  const pre = foldableCode(view.text, view.view, view.first_line || 1);
  if (pre.querySelector(".foldable-line")) {
    wrap.append(
      el(
        "p",
        { class: "fold-tools" },
        el("button", { type: "button", class: "fold-all", onclick: () => pre.foldAll(true) }, "Fold all"),
        " ",
        el("button", { type: "button", class: "unfold-all", onclick: () => pre.foldAll(false) }, "Unfold all"),
      ),
    );
  }
  wrap.append(pre, pre.moreLine);
  return wrap;
}
