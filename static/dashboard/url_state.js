// The inspector's address: filters, sort and the open capture, and the detail sheet's history.
//
// Rules:
// - A filter URL carries only the parameters that have a value (no `path=&method=&...`), the sort
//   only when it is not the default (newest first), and keeps the open capture (`#<id>`).
// - `#<id>` names the open capture: opening one replaces the address's hash (no history entry
//   per row), and a hash pasted into an open tab (hashchange) opens that capture.
// - Under 900 px the detail is a full-screen sheet. Opening it from the list adds one history
//   entry, so the browser's Back closes it as the sheet's own Back button does; a sheet opened by
//   a link (the page loaded with `#<id>`) closes without leaving the page.

export const DEFAULT_SORT = "-time";

// The address for these filters (FormData or [name, value] pairs), sort and hash.
export function filterHref(path, entries, { sort = DEFAULT_SORT, hash = "" } = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of entries) {
    const text = typeof value === "string" ? value.trim() : "";
    if (text && name !== "sort") query.append(name, text);
  }
  if (sort && sort !== DEFAULT_SORT) query.set("sort", sort);
  const search = query.toString();
  return path + (search ? "?" + search : "") + (hash || "");
}

// The capture the address names, or "".
export function hashId(hash = location.hash) {
  try {
    return decodeURIComponent(hash.replace(/^#/, ""));
  } catch {
    return "";
  }
}

// The current address with `sort` set (left out when default), for history.replaceState.
export function withSort(sort) {
  const query = new URLSearchParams(location.search);
  if (sort && sort !== DEFAULT_SORT) query.set("sort", sort);
  else query.delete("sort");
  const search = query.toString();
  return location.pathname + (search ? "?" + search : "") + location.hash;
}

// The detail sheet of narrow screens. onClosed() when it closes by any way (Back button, the
// browser's Back, Esc).
export class DetailSheet {
  constructor({ narrowQuery = "(max-width: 899px)", onClosed = () => {} } = {}) {
    this.media = window.matchMedia(narrowQuery);
    this.onClosed = onClosed;
    this.pushed = false; // whether the open sheet has a history entry of its own
  }

  get narrow() {
    return this.media.matches;
  }

  get isOpen() {
    return document.body.classList.contains("sheet-open");
  }

  // Show capture `id` in the address; on a narrow screen open the sheet (unless `open` is false:
  // a key or follow moving the selection while the list is in view). `push`: this opening came
  // from the list, so it gets a history entry the browser's Back removes.
  show(id, { push = false, open = true } = {}) {
    const url = "#" + encodeURIComponent(id);
    if (this.narrow && !this.isOpen) {
      if (!open) return;
      document.body.classList.add("sheet-open");
      if (push) {
        history.pushState({ sheet: id }, "", url);
        this.pushed = true;
        return;
      }
    }
    if (location.hash !== url) history.replaceState(history.state, "", url);
  }

  // The sheet's Back button (and Esc).
  back() {
    if (!this.isOpen) return;
    if (this.pushed) {
      history.back(); // popstate closes it
      return;
    }
    history.replaceState(null, "", location.pathname + location.search);
    this.closed();
  }

  // The address changed under us (browser Back, a pasted hash): close when it names nothing.
  closedByHistory() {
    if (!this.isOpen) return;
    this.pushed = false;
    this.closed();
  }

  closed() {
    this.pushed = false;
    document.body.classList.remove("sheet-open");
    this.onClosed();
  }
}
