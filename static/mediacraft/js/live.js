// The live connection: /ws/tasks/ with reconnection (exponential backoff with jitter) and, while
// it is down, polling of the JSON API. A small indicator in the top bar says which is in force.
import { t } from "./i18n.js";

const PING_EVERY = 25000;
const PONG_WITHIN = 10000;
const POLL_EVERY = 4000;
const MAX_BACKOFF = 30000;
const WATCH_EVERY = 4000;

export class Live {
  constructor({ path, onTask, onDeleted, poll }) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.onTask = onTask;
    this.onDeleted = onDeleted;
    this.poll = poll;
    this.attempt = 0;
    this.state = "connecting";
    this.indicator = document.querySelector("[data-live-indicator]");
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state !== "live") this.reconnectNow();
    });
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.connect();
  }

  setState(state) {
    this.state = state;
    document.body.dataset.liveState = state;
    if (!this.indicator) return;
    this.indicator.dataset.state = state;
    this.indicator.querySelector("[data-live-text]").textContent = t(state === "live" ? "live" : state);
    this.indicator.title = state === "live" ? t("live_title") : state === "reconnecting" ? t("reconnecting_title") : "";
  }

  connect() {
    clearTimeout(this.retryTimer);
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      clearInterval(this.pingTimer);
      clearTimeout(this.pongTimer);
      this.stopWatching();
      this.scheduleReconnect(); // also after a logout or login elsewhere: the server closes us
    });
  }

  // A new socket now, as whoever the cookie says the browser is.
  restart() {
    const old = this.socket;
    this.socket = null; // its close event is then ignored
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (old) old.close();
    this.attempt = 0;
    this.connect();
  }

  receive(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "hello") {
      this.attempt = 0;
      this.setState("live");
      this.stopPolling();
      this.startPing();
      this.runPoll(); // catch up with anything that happened before (or while) we were away
      if (message.authenticated) this.stopWatching();
      else this.watchForIdentity();
    } else if (message.type === "task") {
      this.onTask(message.task);
    } else if (message.type === "task_deleted") {
      this.onDeleted(message.task_id);
    } else if (message.type === "pong") {
      clearTimeout(this.pongTimer);
    }
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
      this.socket.send(JSON.stringify({ type: "ping" }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.socket && this.socket.close(), PONG_WITHIN);
    }, PING_EVERY);
  }

  scheduleReconnect() {
    this.setState("reconnecting");
    this.startPolling();
    const delay = Math.min(MAX_BACKOFF, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    this.attempt = 0;
    this.connect();
  }

  // The server picks a socket's user when it opens, so an anonymous socket stays deaf after this
  // browser becomes a visitor (a submit in another tab, a script with this cookie). Until then,
  // ask the list API (empty for anonymous clients; it creates nothing) and reconnect once it
  // shows a task.
  watchForIdentity() {
    if (this.watchTimer) return;
    this.watchTimer = setInterval(async () => {
      if (document.visibilityState === "hidden" || this.watching) return;
      this.watching = true;
      try {
        const response = await fetch("/api/tasks/?page_size=1", { credentials: "same-origin", headers: { Accept: "application/json" } });
        const body = response.ok ? await response.json() : null;
        if (body && body.count > 0 && this.watchTimer) {
          this.stopWatching();
          this.restart();
        }
      } catch {
        // offline: the next round tries again
      } finally {
        this.watching = false;
      }
    }, WATCH_EVERY);
  }

  stopWatching() {
    clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  startPolling() {
    if (this.pollTimer || !this.poll) return;
    this.runPoll();
    this.pollTimer = setInterval(() => this.runPoll(), POLL_EVERY);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  async runPoll() {
    if (!this.poll || this.polling) return;
    this.polling = true;
    try {
      await this.poll();
    } catch {
      // offline or the server is restarting: the next round tries again
    } finally {
      this.polling = false;
    }
  }
}
