/*! stomp-push: reconnects for @stomp/stompjs 7 that follow django-stomp-push's advice | BSD-3-Clause
 *
 * Every ERROR frame django-stomp-push sends before it closes a connection carries a `reconnect` header
 * (docs/concepts.md, "Whether to reconnect"); this helper acts on it:
 *   never  stop, and say why: onSessionEnded(reason) when the session is gone, onRefused(reason) otherwise;
 *   later  wait the `retry-after` header's milliseconds, plus up to `retryAfterJitter` more;
 *   now    reconnect after a full-jitter exponential backoff. A close without an ERROR frame (1006: a network
 *          failure, a server killed without a word) means the same.
 * Subscriptions made through the helper are made again, with the same headers and callback, after every
 * reconnect. It wraps an unmodified @stomp/stompjs 7 Client, whose class the page passes in.
 *
 * One source, two files: stomp-push.mjs (this ES module) and stomp-push.js (a plain script defining the global
 * `StompPush`), generated from it by tests/interop/stomp_push_build.py; a test fails when they differ.
 * Documentation: docs/clients.md, "Reconnecting with the stomp-push helper".
 */

const VERSION = "1.0.0";

/** The ERROR `message` values that mean the Django session is gone: sign in again before reconnecting. */
const SESSION_END_MESSAGES = Object.freeze(["logged out", "session ended", "session expired", "no valid session"]);

/** Reconnect backoff: a delay drawn uniformly from [0, min(cap, base × factor^attempt)] milliseconds. */
const DEFAULT_BACKOFF = Object.freeze({ base: 1000, cap: 30000, factor: 2 });

const DEFAULTS = Object.freeze({
  retryAfterJitter: 1000, // ms added at most to the server's retry-after, so a crowd told the same does not return as one
  stableAfter: 10000, // ms a connection must stay up for the backoff to start again from `base`
});

const RECONNECT_ADVICE = Object.freeze(["never", "later", "now"]);

/** The full-jitter delay in ms before reconnect attempt `attempt` (0 for the first after a stable connection). */
function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(backoff.cap, backoff.base * Math.pow(backoff.factor, attempt));
  return Math.round(random() * ceiling);
}

/**
 * What a close means for the client: `{code, reason, message, reconnect, retryAfter}`.
 *
 * `event` is the WebSocket close event, `error` the ERROR frame that came before it on the same connection
 * (or null). `message` is the ERROR's `message` header, `reconnect` one of never, later, now, `retryAfter` the
 * `retry-after` header in ms (null without one). An ERROR without a `reconnect` header (a server older than the
 * header) means `never` for a session end and `now` for anything else; no ERROR at all means `now`.
 */
function describeClose(event, error, sessionEndMessages = SESSION_END_MESSAGES) {
  const headers = error ? error.headers : {};
  const message = headers.message || "";
  let reconnect = headers.reconnect;
  if (!RECONNECT_ADVICE.includes(reconnect)) reconnect = sessionEndMessages.includes(message) ? "never" : "now";
  const retryAfter = /^\d+$/.test(headers["retry-after"] || "") ? Number(headers["retry-after"]) : null;
  return Object.freeze({ code: event.code, reason: event.reason || "", message, reconnect, retryAfter });
}

/**
 * One STOMP connection that reconnects by itself and keeps its subscriptions.
 *
 * options:
 *   Client              the @stomp/stompjs 7 Client class (StompJs.Client, or imported from "@stomp/stompjs")
 *   stomp               the stompjs configuration: brokerURL or webSocketFactory, connectHeaders, heart-beats,
 *                       debug... (its reconnectDelay is always 0: this helper decides when to reconnect)
 *   backoff             {base, cap, factor}, default {base: 1000, cap: 30000, factor: 2}
 *   retryAfterJitter    ms added at most to a `retry-after`, default 1000
 *   stableAfter         ms a connection must stay up to reset the backoff, default 10000
 *   sessionEndMessages  the ERROR messages that mean "session gone", default SESSION_END_MESSAGES
 *   onStateChange(state)       state: {name, attempt} and, by name:
 *                                connecting, connected: nothing more
 *                                waiting: delay (ms), until (epoch ms), close (what describeClose says of the close)
 *                                stopped: kind ("session-ended", "refused", "stopped", "not-started"), reason, close
 *   onConnect(frame)           the CONNECTED frame, after the subscriptions were made again
 *   onSessionEnded(reason, close)  the server said `reconnect: never` because the session is gone
 *   onRefused(reason, close)       the server said `reconnect: never` for another reason
 */
class Connection {
  constructor(options) {
    if (!options || typeof options.Client !== "function") {
      throw new TypeError("stomp-push: pass the @stomp/stompjs Client class as options.Client");
    }
    const backoff = Object.freeze(Object.assign({}, DEFAULT_BACKOFF, options.backoff));
    if (!(backoff.base > 0 && backoff.cap >= backoff.base && backoff.factor >= 1)) {
      throw new RangeError("stomp-push: backoff needs base > 0, cap >= base and factor >= 1");
    }
    this.options = Object.freeze(
      Object.assign({ sessionEndMessages: SESSION_END_MESSAGES }, DEFAULTS, options, { backoff: backoff }),
    );
    this._subscriptions = new Map(); // id -> {id, destination, headers, callback}
    this._lastId = 0;
    this._attempt = 0; // reconnects since the last stable connection
    this._timer = null;
    this._error = null; // the ERROR frame received on the current WebSocket
    this._connectedAt = null;
    this._state = Object.freeze({ name: "stopped", attempt: 0, kind: "not-started", reason: "" });

    const stomp = options.stomp || {};
    this.client = new options.Client(
      Object.assign({}, stomp, {
        reconnectDelay: 0, // stompjs must not reconnect on its own schedule: this helper does
        onConnect: (frame) => {
          this._connected(frame);
          if (stomp.onConnect) stomp.onConnect(frame);
        },
        onStompError: (frame) => {
          this._error = frame;
          if (stomp.onStompError) stomp.onStompError(frame);
        },
        onWebSocketClose: (event) => {
          if (stomp.onWebSocketClose) stomp.onWebSocketClose(event);
          this._closed(event);
        },
      }),
    );
  }

  /** The current state (an immutable object; `onStateChange` receives each new one). */
  get state() {
    return this._state;
  }

  /** True while a STOMP session is established. */
  get connected() {
    return this.client.connected;
  }

  /** Connect; after a stop, start again from a fresh backoff. */
  start() {
    if (this._state.name !== "stopped") return;
    this._attempt = 0;
    this._connect();
  }

  /** Disconnect and stop reconnecting; resolves once the WebSocket is closed. */
  stop() {
    clearTimeout(this._timer);
    this._timer = null;
    if (this._state.name !== "stopped") this._setState({ name: "stopped", kind: "stopped", reason: "stopped" });
    return this.client.deactivate();
  }

  /**
   * Subscribe now if connected, and again after every reconnect, with the same headers and callback.
   * Returns {id, destination, unsubscribe()}; `headers.id` names the subscription, else the helper does.
   */
  subscribe(destination, callback, headers = {}) {
    const id = headers.id || `sub-${++this._lastId}`;
    if (this._subscriptions.has(id)) throw new Error(`stomp-push: subscription id ${id} is taken`);
    const subscription = { id, destination, headers: Object.assign({}, headers, { id }), callback };
    this._subscriptions.set(id, subscription);
    if (this.client.connected) this._subscribe(subscription);
    return Object.freeze({ id, destination, unsubscribe: () => this.unsubscribe(id) });
  }

  /** Forget a subscription (by id or by what `subscribe` returned); false when there was none. */
  unsubscribe(subscription) {
    const id = typeof subscription === "string" ? subscription : subscription.id;
    if (!this._subscriptions.delete(id)) return false;
    if (this.client.connected) this.client.unsubscribe(id);
    return true;
  }

  /** Send a frame: stompjs's `publish`, which throws while not connected. */
  publish(params) {
    this.client.publish(params);
  }

  // -- the connection's life ---------------------------------------------------------------------------------

  _connect() {
    this._error = null;
    this._setState({ name: "connecting" });
    this.client.activate();
  }

  _connected(frame) {
    this._connectedAt = Date.now();
    this._setState({ name: "connected" });
    for (const subscription of this._subscriptions.values()) this._subscribe(subscription);
    if (this.options.onConnect) this.options.onConnect(frame);
  }

  _subscribe({ destination, callback, headers }) {
    this.client.subscribe(destination, callback, Object.assign({}, headers));
  }

  _closed(event) {
    if (this._state.name === "stopped") return; // stop() closed it
    const close = describeClose(event, this._error, this.options.sessionEndMessages);
    this._error = null;
    if (this._connectedAt !== null && Date.now() - this._connectedAt >= this.options.stableAfter) this._attempt = 0;
    this._connectedAt = null;
    // stompjs stays active after a close even with reconnectDelay 0: park it until this helper reconnects.
    void this.client.deactivate();
    if (close.reconnect === "never") {
      this._end(close);
      return;
    }
    const delay =
      close.reconnect === "later" && close.retryAfter !== null
        ? close.retryAfter + Math.round(Math.random() * this.options.retryAfterJitter)
        : backoffDelay(this._attempt, this.options.backoff);
    this._attempt += 1;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._connect();
    }, delay);
    this._setState({ name: "waiting", delay, until: Date.now() + delay, close });
  }

  _end(close) {
    const sessionEnded = this.options.sessionEndMessages.includes(close.message);
    const reason = close.message || close.reason || `closed (${close.code})`;
    const kind = sessionEnded ? "session-ended" : "refused";
    this._setState({ name: "stopped", kind, reason, close });
    const callback = sessionEnded ? this.options.onSessionEnded : this.options.onRefused;
    if (callback) callback(reason, close);
  }

  _setState(state) {
    this._state = Object.freeze(Object.assign({ attempt: this._attempt }, state));
    if (this.options.onStateChange) this.options.onStateChange(this._state);
  }
}

export { Connection, DEFAULT_BACKOFF, SESSION_END_MESSAGES, VERSION, backoffDelay, describeClose };
