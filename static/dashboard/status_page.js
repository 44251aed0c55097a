// The status page: per-tunnel config (its Traffic Policy included) and metrics, updated from the
// inspector WebSocket's metrics.updated every second, with small uPlot time series of the last
// 5 minutes, and the captures' storage line with HAR export and import.
//
// - The charts start from the runtime's history (extras.history, sampled every second on the
//   server), so a reload keeps them; live points newer than the history's last are appended.
// - The duration chart has a log scale: one 2.5 s request must not flatten a 1 ms p50 to the axis.
//   A 0 (no request yet) has no place on a log scale and is drawn as a gap.
// - Every duration is written by duration.js (637 µs, 3.0 ms, 2.50 s): cells, axes and legends.
// - Axis and grid colours are read from inspector.css's variables when the chart draws, so a dark
//   theme applies; a change of the OS scheme redraws.
// Each chart container's uPlot instance is its `uplot` property (the browser tests read it).
import { formatRate } from "./format.js";
import { formatDuration } from "./duration.js";
import { connectLive } from "./live_socket.js";
import { uploadHar } from "./har_upload.js";

const boot = JSON.parse(document.getElementById("status-boot").textContent);
// The metrics history, the storage line and the capture tools' URLs (tunnel_status.status_page_boot).
const extras = JSON.parse(document.getElementById("status-extras").textContent);
const cards = document.getElementById("tunnel-cards");
const template = document.getElementById("tunnel-card-template");
const POINTS = 300;
const HEIGHT = 130;
const charts = new Map(); // tunnel name -> {data, plots}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function cardOf(name) {
  return [...cards.querySelectorAll(".tunnel-card")].find((card) => card.dataset.tunnel === name) || null;
}

function ensureCard(info) {
  let card = cardOf(info.name);
  if (!card) {
    card = template.content.firstElementChild.cloneNode(true);
    card.dataset.tunnel = info.name;
    cards.append(card);
  }
  card.querySelector(".tunnel-name").textContent = info.name;
  const link = card.querySelector(".tunnel-url");
  if (info.public_url) {
    link.textContent = info.public_url;
    link.href = info.public_url;
  }
  if (info.addr !== undefined) card.querySelector(".tunnel-addr").textContent = info.addr;
  if (info.inspect !== undefined) card.querySelector(".tunnel-inspect").textContent = String(info.inspect);
  if (info.proto !== undefined) card.querySelector(".tunnel-proto").textContent = info.proto;
  if (info.traffic_policy !== undefined) showPolicy(card, info.traffic_policy);
  document.getElementById("no-tunnels").hidden = true;
  return card;
}

// The policy the tunnel runs, as text (a replaced endpoint may change it), or "none".
function showPolicy(card, text) {
  const pre = card.querySelector(".traffic-policy-text");
  if (pre.textContent !== text) pre.textContent = text;
  pre.hidden = !text;
  card.querySelector(".policy-none").hidden = Boolean(text);
}

function removeCard(name) {
  const card = cardOf(name);
  if (card) card.remove();
  const chart = charts.get(name);
  if (chart) chart.plots.forEach((plot) => plot.destroy());
  charts.delete(name);
  document.getElementById("no-tunnels").hidden = cards.children.length > 0;
}

function fillMetrics(card, metrics) {
  for (const cell of card.querySelectorAll("[data-metric]")) {
    const [group, key] = cell.dataset.metric.split(".");
    const value = metrics[group] ? metrics[group][key] : 0;
    if (key.startsWith("p")) cell.textContent = formatDuration(value || 0);
    else if (key.startsWith("rate")) cell.textContent = formatRate(value);
    else cell.textContent = String(value);
  }
}

// --- charts ------------------------------------------------------------------------------------
// Only whole decades get a label and a grid line on the log axis (1 ms, 10 ms, 100 ms...).
const decadesOnly = (u, splits) => splits.map((v) => (v > 0 && Math.abs(Math.log10(v) % 1) < 1e-9 ? v : null));

function axis(values, size, filter = null) {
  // uPlot takes a key given as undefined as a value: only set what is given.
  const only = filter ? { filter } : {};
  return {
    size,
    ...(values ? { values } : {}),
    ...only,
    stroke: () => cssVar("--muted", "#6b7580"),
    grid: { stroke: () => cssVar("--line", "#dde1e6"), width: 1, ...only },
    ticks: { stroke: () => cssVar("--line", "#dde1e6"), width: 1, ...only },
  };
}

function makePlot(container, series, { log = false, format = null } = {}) {
  const width = Math.max(container.clientWidth, 150);
  const y = log
    ? {
        distr: 3,
        log: 10,
        // No data yet: a decade either side of 1 ms, so the axis reads as durations at once. The
        // lowest value stays at least a factor 2 above the axis (min / 2 before snapping to
        // decades): a p50 just over a decade's start was drawn on the axis line itself.
        range: (u, min, max) =>
          min === null || max === null ? [1e5, 1e8] : uPlot.rangeLog(min / 2, max, 10, true),
      }
    : { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1] };
  const shown = format || ((u, value) => (value === null ? "–" : String(Math.round(value * 100) / 100)));
  const plot = new uPlot(
    {
      width,
      height: HEIGHT,
      legend: { show: series.length > 1 },
      cursor: { points: { show: false } },
      scales: { x: { time: true }, y },
      axes: [
        axis(null, 30),
        axis(
          format ? (u, splits) => splits.map((v) => (v === null ? "" : formatDuration(v))) : null,
          log ? 62 : 44,
          log ? decadesOnly : null,
        ),
      ],
      series: [{}].concat(
        series.map(([label, color]) => ({ label, stroke: color, width: 1.5, points: { show: false }, value: shown })),
      ),
    },
    [[], ...series.map(() => [])],
    container,
  );
  container.uplot = plot;
  return plot;
}

function chartOf(card, name) {
  let chart = charts.get(name);
  if (!chart) {
    const durationValue = (u, value) => (value === null ? "–" : formatDuration(value));
    chart = {
      data: { t: [], count: [], rps: [], open: [], p50: [], p90: [], p99: [] },
      plots: [
        makePlot(card.querySelector('[data-chart="rps"]'), [["req/s", "#2f7ed8"]]),
        makePlot(card.querySelector('[data-chart="open"]'), [["open", "#8a5cd6"]]),
        makePlot(
          card.querySelector('[data-chart="latency"]'),
          [
            ["p50", "#2e9d57"],
            ["p90", "#e0a526"],
            ["p99", "#d64541"],
          ],
          { log: true, format: durationValue },
        ),
      ],
    };
    charts.set(name, chart);
  }
  return chart;
}

const onLog = (value) => (value > 0 ? value : null);

function redraw(chart) {
  const d = chart.data;
  chart.plots[0].setData([d.t, d.rps]);
  chart.plots[1].setData([d.t, d.open]);
  chart.plots[2].setData([d.t, d.p50.map(onLog), d.p90.map(onLog), d.p99.map(onLog)]);
}

function trim(d) {
  const extra = d.t.length - POINTS;
  if (extra > 0) for (const key of Object.keys(d)) d[key].splice(0, extra);
}

// The runtime's history: the charts' first points.
function loadHistory(card, name, history) {
  const chart = chartOf(card, name);
  for (const key of Object.keys(chart.data)) chart.data[key] = (history[key] || []).slice();
  trim(chart.data);
  redraw(chart);
}

function record(card, info, time) {
  const chart = chartOf(card, info.name);
  const d = chart.data;
  if (d.t.length && time <= d.t[d.t.length - 1]) return; // the history already holds this moment
  const m = info.metrics;
  const count = m.http.count;
  const last = d.t.length - 1;
  const rps = last < 0 ? 0 : Math.max(0, (count - d.count[last]) / Math.max(time - d.t[last], 0.001));
  d.t.push(time);
  d.count.push(count);
  d.rps.push(rps);
  d.open.push(m.conns.gauge);
  d.p50.push(m.http.p50);
  d.p90.push(m.http.p90);
  d.p99.push(m.http.p99);
  trim(d);
  redraw(chart);
}

function resizeCharts() {
  for (const chart of charts.values()) {
    for (const plot of chart.plots) {
      const width = Math.max(plot.root.parentElement.clientWidth, 150);
      if (width !== plot.width) plot.setSize({ width, height: HEIGHT });
    }
  }
}

// --- live updates ------------------------------------------------------------------------------
function onMessage(message) {
  if (message.type === "metrics.updated") {
    const seen = new Set();
    for (const info of message.tunnels) {
      seen.add(info.name);
      const card = ensureCard(info);
      fillMetrics(card, info.metrics);
      record(card, info, message.time);
    }
    for (const card of [...cards.querySelectorAll(".tunnel-card")]) {
      if (!seen.has(card.dataset.tunnel)) removeCard(card.dataset.tunnel);
    }
  } else if (message.type === "tunnel.started" && message.tunnel) {
    fillMetrics(ensureCard(message.tunnel), message.tunnel.metrics);
  } else if (message.type === "tunnel.stopped") {
    removeCard(message.name);
  }
}

function onState(state) {
  const live = document.getElementById("live-state");
  live.className = "live-state " + state;
  live.textContent = { live: "live", connecting: "connecting…", offline: "offline, retrying…" }[state];
}

// --- captures: storage line, HAR import ----------------------------------------------------------
async function refreshStorage() {
  try {
    const response = await fetch(extras.tool_urls.storage, { credentials: "same-origin" });
    if (response.ok) document.getElementById("storage-line").textContent = (await response.json()).line;
  } catch {
    // offline: the socket's state says so; the next refresh catches up
  }
}

const importInput = document.getElementById("import-file");
importInput.addEventListener("change", async () => {
  const file = importInput.files[0];
  if (!file) return;
  const result = document.getElementById("import-result");
  result.className = "import-result";
  result.textContent = "Importing " + file.name + "…";
  try {
    const answer = await uploadHar(extras.tool_urls.import_har, file);
    result.replaceChildren(
      `Imported ${answer.imported} ${answer.imported === 1 ? "capture" : "captures"} as “${answer.tunnel_name}”. `,
      Object.assign(document.createElement("a"), { href: answer.list_url, textContent: "Show them" }),
    );
    refreshStorage();
  } catch (error) {
    result.className = "import-result error";
    result.textContent = "Not imported: " + error.message;
  } finally {
    importInput.value = "";
  }
});

for (const info of boot.tunnels) {
  const card = ensureCard(info);
  if (info.metrics) fillMetrics(card, info.metrics);
  if (extras.history[info.name]) loadHistory(card, info.name, extras.history[info.name]);
}
new ResizeObserver(resizeCharts).observe(cards);
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  for (const chart of charts.values()) chart.plots.forEach((plot) => plot.redraw(false, true));
});
setInterval(refreshStorage, 10_000);
connectLive(boot.urls.socket, onMessage, onState);
