// Display formats shared by the inspector and the status page.

// Durations: one format on every page (duration.js).
export { formatDuration } from "./duration.js";

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

// --- bytes ----------------------------------------------------------------------------------
// `offset  hex bytes  ascii`, `width` bytes a line (as the detail's Binary tab draws it).
export function hexDump(bytes, width = 8) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += width) {
    const row = bytes.subarray(offset, offset + width);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(width * 3 - 1);
    const ascii = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex}  ${ascii}`);
  }
  return lines.join("\n");
}

// Bytes as editable hex: two digits a byte, 16 bytes a line.
export function hexPairs(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    lines.push([...bytes.subarray(offset, offset + 16)].map((b) => b.toString(16).padStart(2, "0")).join(" "));
  }
  return lines.join("\n");
}

// Hex digits (whitespace anywhere) back to bytes; throws an Error naming the first bad spot.
export function parseHex(text) {
  const digits = text.replace(/\s+/g, "");
  const bad = /[^0-9a-fA-F]/.exec(digits);
  if (bad) throw new Error(`"${bad[0]}" is not a hex digit`);
  if (digits.length % 2) throw new Error("an odd number of hex digits: each byte is two");
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
