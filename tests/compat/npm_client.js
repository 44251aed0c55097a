// Drives the npm `ngrok` package (v4) against this agent, the way an application would, and
// prints one JSON summary line on stdout for tests/compat/test_npm_ngrok.py to check.
//
// Environment: NGROK_BIN_DIR (the folder holding our `ngrok` launcher, i.e. bin/), NGROK_CONFIG
// (a config file whose web_addr is a free loopback port), UPSTREAM_PORT (a local HTTP service).
// Everything talks to 127.0.0.1; every wait is bounded.
"use strict";

const http = require("http");
const ngrok = require("ngrok");

const binDir = process.env.NGROK_BIN_DIR;
const configPath = process.env.NGROK_CONFIG;
const upstreamPort = Number(process.env.UPSTREAM_PORT);
const DEADLINE_MS = Number(process.env.NPM_CLIENT_DEADLINE_MS || 45000);

const summary = { logs: [], statuses: [], terminated: false };

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// An HTTP request through the public URL with node's own http module (no keep-alive).
function send(url, method, body) {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method, agent: false, timeout: 10000, headers: { "Content-Type": "text/plain" } },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode, body: Buffer.concat(chunks).toString("utf8") })
        );
      }
    );
    request.on("timeout", () => request.destroy(new Error(`timed out: ${method} ${url}`)));
    request.on("error", reject);
    request.end(body);
  });
}

// Captures are written just after the exchange; poll (bounded) until `count` are listed.
async function waitForRequests(api, count) {
  const until = Date.now() + 10000;
  for (;;) {
    const listed = await api.listRequests();
    if (listed.requests.length >= count || Date.now() > until) return listed.requests;
    await sleep(25);
  }
}

async function main() {
  summary.version = await ngrok.getVersion({ binPath: () => binDir });
  const url = await ngrok.connect({
    proto: "http",
    addr: upstreamPort, // a JSON number, as npm users pass it
    binPath: () => binDir,
    configPath,
    authtoken: "compat-test-token", // runs `ngrok authtoken TOKEN --config=...` first
    region: "eu", // passed as --region=eu
    onLogEvent: (message) => summary.logs.push(message),
    onStatusChange: (status) => summary.statuses.push(status),
    onTerminated: () => {
      summary.terminated = true;
    },
  });
  summary.url = url;
  summary.apiUrl = ngrok.getUrl();
  const api = ngrok.getApi();

  summary.response = await send(`${url}/from-npm?x=1`, "POST", "hello from npm");

  const tunnels = (await api.listTunnels()).tunnels;
  summary.tunnels = tunnels.map((t) => ({ name: t.name, public_url: t.public_url, proto: t.proto, config: t.config }));
  const tunnelName = tunnels[0].name;

  const captured = await waitForRequests(api, 1);
  summary.requestsBefore = captured.map((r) => ({ id: r.id, tunnel_name: r.tunnel_name, uri: r.request.uri }));
  const original = captured[0];

  summary.replayed = await api.replayRequest(original.id, tunnelName);
  const afterReplay = await waitForRequests(api, 2);
  summary.requestsAfterReplay = afterReplay.map((r) => ({
    id: r.id,
    tunnel_name: r.tunnel_name,
    method: r.request.method,
    uri: r.request.uri,
    status_code: r.response && r.response.status_code,
  }));

  const detail = await api.requestDetail(original.id);
  summary.detail = {
    id: detail.id,
    method: detail.request.method,
    uri: detail.request.uri,
    body: Buffer.from(detail.request.raw, "base64").toString("utf8").split("\r\n\r\n")[1],
    status_code: detail.response.status_code,
  };

  summary.deletedAll = await api.deleteAllRequests();
  summary.requestsAfterDelete = (await api.listRequests()).requests.length;

  summary.disconnected = await ngrok.disconnect(url);
  summary.tunnelsAfterDisconnect = (await api.listTunnels()).tunnels.length;

  const killStart = Date.now();
  await ngrok.kill();
  summary.killMs = Date.now() - killStart;
}

const watchdog = setTimeout(() => {
  summary.error = `npm_client.js did not finish within ${DEADLINE_MS} ms`;
  console.log(JSON.stringify(summary));
  ngrok.kill().finally(() => process.exit(2));
}, DEADLINE_MS);

main()
  .then(() => {
    clearTimeout(watchdog);
    console.log(JSON.stringify(summary));
  })
  .catch(async (error) => {
    clearTimeout(watchdog);
    summary.error = String((error && error.stack) || error);
    if (error && error.body) summary.errorBody = error.body;
    console.log(JSON.stringify(summary));
    try {
      await ngrok.kill();
    } finally {
      process.exitCode = 1;
    }
  });
