// One duration format for every page (the list, the detail, the diff, the status page's tables and
// chart axes): three significant digits at most, in the unit that reads best.
//   637 µs · 3.0 ms · 42.5 ms · 250 ms · 2.50 s · 12.5 s · 125 s
// Under a millisecond: whole microseconds. Under 100 ms: milliseconds with one decimal; under a
// second: whole milliseconds. Then seconds with two decimals under 10 s, one under 100 s, else whole.
// A value that rounds up to the next unit is shown in it (999.7 µs is "1.0 ms", not "1000 µs").
// Input is nanoseconds (the API's and the captures' unit); null or undefined gives "".

export function formatDuration(ns) {
  if (ns === null || ns === undefined) return "";
  const value = Math.max(0, Number(ns));
  if (!Number.isFinite(value)) return "";
  const us = Math.round(value / 1e3);
  if (us < 1000) return us + " µs";
  const ms = value / 1e6;
  if (Number(ms.toFixed(1)) < 100) return ms.toFixed(1) + " ms";
  if (Math.round(ms) < 1000) return Math.round(ms) + " ms";
  const s = value / 1e9;
  if (Number(s.toFixed(2)) < 10) return s.toFixed(2) + " s";
  if (Number(s.toFixed(1)) < 100) return s.toFixed(1) + " s";
  return Math.round(s) + " s";
}
