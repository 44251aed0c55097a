// Display formats shared by the inspector and the status page.

// Duration in nanoseconds: milliseconds with two decimals, seconds past 1000 ms (as ngrok shows it).
export function formatDuration(ns) {
  if (ns === null || ns === undefined) return "";
  const ms = ns / 1e6;
  if (ms >= 1000) return (ms / 1000).toFixed(2) + "s";
  return ms.toFixed(2) + "ms";
}

// Seconds for metric percentiles (the API reports nanoseconds): three decimals, or six below 1 ms
// so that fast local services do not all read 0.000s.
export function formatSeconds(ns) {
  const seconds = Number(ns || 0) / 1e9;
  if (seconds === 0) return "0s";
  return seconds.toFixed(seconds < 0.001 ? 6 : 3) + "s";
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return bytes + " B";
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
}

// "3s ago", "5m ago", "2h ago", then a date.
export function formatAgo(epochSeconds, now = Date.now() / 1000) {
  const seconds = Math.max(0, Math.round(now - epochSeconds));
  if (seconds < 5) return "just now";
  if (seconds < 60) return seconds + "s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
  return new Date(epochSeconds * 1000).toLocaleString();
}

export function formatTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleString();
}

// CSS class of a status code: s2xx .. s5xx, or pending.
export function statusClass(code) {
  if (code === null || code === undefined) return "pending";
  const family = Math.floor(code / 100);
  return family >= 1 && family <= 5 ? "s" + family + "xx" : "sother";
}

export function formatRate(rate) {
  return Number(rate || 0).toFixed(2);
}
