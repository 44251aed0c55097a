// The inspector's one WebSocket, reconnecting with backoff. Calls onMessage(msg) for each delta and
// onState("live" | "connecting" | "offline", reconnected) when the connection changes.
export function connectLive(path, onMessage, onState) {
  let socket = null;
  let delay = 500;
  let everOpen = false;
  let closed = false;

  function open() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    onState("connecting", false);
    socket = new WebSocket(scheme + location.host + path);
    socket.addEventListener("open", () => {
      delay = 500;
      onState("live", everOpen);
      everOpen = true;
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(message);
    });
    socket.addEventListener("close", () => {
      if (closed) return;
      onState("offline", false);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  }

  open();
  return {
    close() {
      closed = true;
      if (socket) socket.close();
    },
  };
}
