// Control over the live stream: pins, pause / follow newest, jump to a time, and a Clear button
// that says what it clears.
//
// Rules:
// - A pinned capture stays at the top of the list, whatever the filters, the window trimming or
//   the store's eviction do to the rest; pins (with the summary last seen) are kept in this
//   browser's localStorage, so they survive a reload. A pinned capture the store no longer has
//   stays listed, marked gone, until unpinned.
// - Pause holds new rows back (the list stops moving; rows already listed still update) and says
//   how many wait; resuming lets them in. Follow newest opens each new capture as it arrives.
// - Clear says what it clears: "Clear all" without filters, "Clear N filtered" with them (N from
//   the server, counted up to a cap: "10,000+"), asks once more ("Really clear 37 filtered?"),
//   and deletes only that (POST inspect/captures/clear with the filters).
import { fetchJSON, sendJSON } from "./dom.js";

const PIN_STORAGE_KEY = "inspector.pins";

export class Pins {
  constructor(storage = safeStorage()) {
    this.storage = storage;
    this.byId = new Map();
    try {
      for (const summary of JSON.parse(storage?.getItem(PIN_STORAGE_KEY) || "[]")) {
        if (summary && typeof summary.id === "string") this.byId.set(summary.id, summary);
      }
    } catch {
      // unreadable pins: start with none
    }
  }

  has(id) {
    return this.byId.has(id);
  }

  ids() {
    return [...this.byId.keys()];
  }

  summaries() {
    return [...this.byId.values()];
  }

  add(summary) {
    this.byId.set(summary.id, summary);
    this.save();
  }

  update(summary) {
    if (!this.byId.has(summary.id)) return;
    this.byId.set(summary.id, summary);
    this.save();
  }

  remove(id) {
    if (this.byId.delete(id)) this.save();
  }

  save() {
    try {
      this.storage?.setItem(PIN_STORAGE_KEY, JSON.stringify(this.summaries()));
    } catch {
      // storage full or refused: pins last for this page only
    }
  }
}

function safeStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

// A toggle button (aria-pressed): calls onChange(pressed) on each click.
export function toggleButton(button, onChange) {
  const state = {
    get pressed() {
      return button.getAttribute("aria-pressed") === "true";
    },
    set(pressed) {
      button.setAttribute("aria-pressed", String(pressed));
    },
  };
  button.addEventListener("click", () => {
    state.set(!state.pressed);
    onChange(state.pressed);
  });
  return state;
}

// A datetime-local value (local time, to the millisecond) as epoch seconds at the end of that
// millisecond, so a capture shown as 14:03:07.123 is "at or before" 14:03:07.123; null when empty.
export function epochOfLocalInput(value) {
  if (!value) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : (at.getTime() + 0.999) / 1000;
}

// The value a datetime-local input shows for epoch seconds (local time, milliseconds).
export function localInputValue(epochSeconds) {
  const at = new Date(epochSeconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}` +
    `T${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`
  );
}

export function clearLabel(count) {
  if (!count || !count.filtered) return "Clear all";
  const number = count.count.toLocaleString("en-US") + (count.exact ? "" : "+");
  return `Clear ${number} filtered`;
}

// The Clear button: label from the server's count, a second click to confirm, the filtered
// delete. onCleared({deleted, filtered}) after the server answered; onError(message).
export function setupClear(button, { filtered, filterQuery, urls, onCleared, onError }) {
  let label = filtered ? "Clear filtered" : "Clear all";
  let armed = null;
  let refreshing = null;

  function show(text) {
    button.textContent = text;
  }

  function disarm() {
    clearTimeout(armed);
    armed = null;
    button.classList.remove("armed");
    show(label);
  }

  async function refresh() {
    if (!filtered) return label;
    refreshing =
      refreshing ||
      fetchJSON(urls.count + "?" + filterQuery)
        .then((count) => {
          label = clearLabel(count);
          button.disabled = count.count === 0;
          if (!armed) show(label);
          return label;
        })
        .catch(() => label)
        .finally(() => {
          refreshing = null;
        });
    return refreshing;
  }

  let refreshTimer = null;
  // The filtered count moves with the stream: recount a moment after the list changed.
  function refreshSoon() {
    if (!filtered) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 1000);
  }

  button.addEventListener("click", async () => {
    if (!armed) {
      button.classList.add("armed");
      armed = setTimeout(disarm, 4000);
      show("Really " + label.charAt(0).toLowerCase() + label.slice(1) + "?");
      if (filtered) {
        const fresh = await refresh();
        if (armed) show("Really " + fresh.charAt(0).toLowerCase() + fresh.slice(1) + "?");
      }
      return;
    }
    disarm();
    try {
      const query = filtered ? "?" + filterQuery : "";
      const result = await sendJSON("POST", urls.clear + query);
      onCleared(result);
    } catch (err) {
      onError(err.message);
    }
    refresh();
  });

  show(label);
  refresh();
  return { refresh, refreshSoon };
}
