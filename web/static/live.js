// The realtime WebSocket, reconnecting by itself with backoff after a drop.
//
// `hello()` builds the first frame for each (re)connection. The socket stops for good when
// `stop()` is called, or when the server closes with a code that says retrying cannot help.

const NO_RETRY = new Set([4401, 4403, 4409]); // invalid link or sign-in, forbidden, replaced
const DELAYS = [1, 2, 4, 8, 15]; // seconds; then 15 s between tries

export class LiveSocket {
  constructor({ hello, onFrame, onState }) {
    this.hello = hello;
    this.onFrame = onFrame;
    this.onState = onState || (() => {});
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.countdown = null;
    window.addEventListener("online", () => { if (this.retryTimer) this.reconnectNow(); });
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    this.retryTimer = null;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws`);
    this.socket = socket;
    this.onState(this.attempt ? "reconnecting" : "connecting", {});
    socket.addEventListener("open", () => socket.send(JSON.stringify(this.hello())));
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (this.attempt) this.onState("reconnected", {});
      this.attempt = 0;
      this.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (this.stopped || NO_RETRY.has(event.code)) {
        this.onState("closed", { code: event.code });
        return;
      }
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    const base = DELAYS[Math.min(this.attempt, DELAYS.length - 1)];
    const delay = base * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    let left = Math.ceil(delay);
    this.onState("waiting_to_retry", { seconds: left, attempt: this.attempt });
    this.countdown = setInterval(() => {
      left -= 1;
      if (left > 0) this.onState("waiting_to_retry", { seconds: left, attempt: this.attempt });
    }, 1000);
    this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    this.connect();
  }

  get connected() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.connected) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  // The server is closing (after `session_ended`): no reconnecting, but the frames it sends
  // before its close (`feedback_request`) still arrive; closed from here if it has not closed.
  drain(ms = 5000) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    setTimeout(() => this.stop(), ms);
  }

  // Finished on purpose: no reconnecting. The server's own close (after `session_ended`,
  // `removed`, `declined`) arrives too; stopping first makes it final.
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.countdown);
    this.retryTimer = null;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, "done");
    this.socket = null;
  }
}
