// The admin's capture list: counts captures arriving over the inspector WebSocket, so the user
// knows when a reload would show more (the list itself stays a plain server-rendered page).
import { connectLive } from "./live_socket.js";

const panel = document.getElementById("live-captures");
if (panel) {
  const counter = panel.querySelector(".live-count");
  let fresh = 0;
  connectLive(
    "/ws/inspector",
    (message) => {
      if (message.type !== "capture.created") return;
      fresh += 1;
      counter.querySelector("strong").textContent = String(fresh);
      counter.hidden = false;
    },
    (state) => (panel.dataset.state = state),
  );
}
