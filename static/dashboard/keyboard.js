// The inspector's keys, on mitmweb's model, and a detail fetch that keeps up with a held key.
//
// Rules:
// - j / ArrowDown and k / ArrowUp move the selection; Home / End go to the first / last row;
//   PageUp / PageDown move a screenful; 1..9 pick the detail's tabs by number; r replay, e replay
//   with modifications, c copy as curl, d delete, p pin, / search, Esc back out, ? this help.
// - Keys typed into a field are the field's (Esc leaves it); an open dialog keeps its own keys;
//   Ctrl, Alt and Meta combinations are the browser's.
// - A held key repeats ~30 times a second: the selection follows every repeat at once, but the
//   detail of a burst is fetched for its first row and then only once the keys rest (`idle` ms).
//   Holding j over 200 rows fires two fetches, not 200.

const MOVES = {
  j: 1,
  ArrowDown: 1,
  k: -1,
  ArrowUp: -1,
};

// Keys whose browser default (scrolling, typing "/") would fight the action.
const PREVENT = new Set(["j", "k", "ArrowDown", "ArrowUp", "Home", "End", "PageUp", "PageDown", "/"]);

function typingInto(target) {
  return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable='true']"));
}

// Calls actions.{move(step, repeat), first(), last(), page(step, repeat), tab(n), replay(),
// edit(), curl(), remove(), pin(), search(), escape(), help()} for the keys above.
export function installKeys(actions, root = document) {
  root.addEventListener("keydown", (event) => {
    if (event.metaKey || event.ctrlKey || event.altKey || event.defaultPrevented) return;
    if (typingInto(event.target)) {
      // Esc in a dialog's field closes the dialog (the browser's own); elsewhere it leaves the field.
      if (event.key === "Escape" && !event.target.closest("dialog")) {
        event.target.blur();
        event.preventDefault();
      }
      return;
    }
    if (document.querySelector("dialog[open]")) return;
    const key = event.key;
    let handled = true;
    if (key in MOVES) actions.move(MOVES[key], event.repeat);
    else if (key === "Home") actions.first();
    else if (key === "End") actions.last();
    else if (key === "PageDown") actions.page(1, event.repeat);
    else if (key === "PageUp") actions.page(-1, event.repeat);
    else if (/^[1-9]$/.test(key)) actions.tab(Number(key));
    else if (key === "r") actions.replay();
    else if (key === "e") actions.edit();
    else if (key === "c") actions.curl();
    else if (key === "d") actions.remove();
    else if (key === "p") actions.pin();
    else if (key === "/") actions.search();
    else if (key === "Escape") actions.escape();
    else if (key === "?") actions.help();
    else if (key === "Enter") actions.open();
    else handled = false;
    if (handled && PREVENT.has(key)) event.preventDefault();
  });
}

// Coalesces detail loads during a burst of moves. schedule(id, {repeat}) loads `id` at once when
// it starts a burst, else once no move came for `idle` ms; a move within `burst` ms of the last
// one, or a key's auto-repeat, is part of a burst. The clock and timers can be injected.
export function burstScheduler(
  load,
  { idle = 160, burst = 160, now = () => performance.now(), setTimer = setTimeout, clearTimer = clearTimeout } = {},
) {
  let last = -Infinity;
  let timer = null;
  return {
    schedule(id, { repeat = false } = {}) {
      const at = now();
      const inBurst = repeat || at - last < burst;
      last = at;
      if (timer !== null) clearTimer(timer);
      timer = null;
      if (!inBurst) {
        load(id);
        return;
      }
      timer = setTimer(() => {
        timer = null;
        load(id);
      }, idle);
    },
    // A load that must not wait (a click): it also ends the burst.
    now(id) {
      if (timer !== null) clearTimer(timer);
      timer = null;
      last = now();
      load(id);
    },
    cancel() {
      if (timer !== null) clearTimer(timer);
      timer = null;
    },
  };
}
