// The status page: per-tunnel config (its Traffic Policy included) and metrics, updated from the
// inspector WebSocket's metrics.updated every second, with small uPlot time series (kept in the
// page, last 5 minutes).
import { connectLive } from "./live_socket.js";
import { formatRate, formatSeconds } from "./format.js";

const boot = JSON.parse(document.getElementById("status-boot").textContent);
const cards = document.getElementById("tunnel-cards");
const template = document.getElementById("tunnel-card-template");
const POINTS = 300;
const charts = new Map(); // tunnel name -> {series, plots, lastCount, lastTime}

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
    if (key.startsWith("p")) cell.textContent = formatSeconds(value);
    else if (key.startsWith("rate")) cell.textContent = formatRate(value);
    else cell.textContent = String(value);
  }
}

function makePlot(container, labels, colors) {
  const width = Math.max(container.clientWidth, 200);
  const series = [{}].concat(labels.map((label, i) => ({ label, stroke: colors[i], width: 1.5, points: { show: false } })));
  return new uPlot(
    {
      width,
      height: 120,
      legend: { show: labels.length > 1 },
      cursor: { show: true, points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1e-9) * 1.1] } },
      axes: [{ size: 30 }, { size: 50 }],
      series,
    },
    [[], ...labels.map(() => [])],
    container,
  );
}

function chartOf(card, name) {
  let chart = charts.get(name);
  if (!chart) {
    chart = {
      data: { t: [], rps: [], open: [], p50: [], p90: [], p99: [] },
      plots: [
        makePlot(card.querySelector('[data-chart="rps"]'), ["req/s"], ["#2f7ed8"]),
        makePlot(card.querySelector('[data-chart="open"]'), ["open"], ["#8a5cd6"]),
        makePlot(card.querySelector('[data-chart="latency"]'), ["p50", "p90", "p99"], ["#2e9d57", "#e0a526", "#d64541"]),
      ],
      lastCount: null,
      lastTime: null,
    };
    charts.set(name, chart);
  }
  return chart;
}

function record(card, info, time) {
  const chart = chartOf(card, info.name);
  const m = info.metrics;
  const count = m.http.count;
  const rps = chart.lastCount === null ? 0 : Math.max(0, (count - chart.lastCount) / Math.max(time - chart.lastTime, 0.001));
  chart.lastCount = count;
  chart.lastTime = time;
  const d = chart.data;
  d.t.push(time);
  d.rps.push(rps);
  d.open.push(m.conns.gauge);
  d.p50.push(m.http.p50 / 1e9);
  d.p90.push(m.http.p90 / 1e9);
  d.p99.push(m.http.p99 / 1e9);
  if (d.t.length > POINTS) for (const key of Object.keys(d)) d[key].shift();
  chart.plots[0].setData([d.t, d.rps]);
  chart.plots[1].setData([d.t, d.open]);
  chart.plots[2].setData([d.t, d.p50, d.p90, d.p99]);
}

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

for (const info of boot.tunnels) {
  const card = ensureCard(info);
  if (info.metrics) fillMetrics(card, info.metrics);
}
window.addEventListener("resize", () => {
  for (const [name, chart] of charts) {
    const card = cardOf(name);
    if (!card) continue;
    const boxes = card.querySelectorAll(".chart");
    chart.plots.forEach((plot, i) => plot.setSize({ width: Math.max(boxes[i].clientWidth, 200), height: 120 }));
  }
});
connectLive(boot.urls.socket, onMessage, onState);
