/* The demo page: one STOMP connection bound to the Django session (see templates/demo/index.html).
 *
 * Shows /topic/clock, the user's notices, /app/echo replies and the session's remaining lifetime; when the
 * server closes the connection it says why, and after a 1008 (the session ended) it does not reconnect.
 */
(() => {
  "use strict";

  const CLOSE_POLICY_VIOLATION = 1008;
  // ERROR frame `message` values for a session end -> [title, why] in the user's words.
  const SESSION_ENDS = {
    "logged out": ["Your session ended", "you logged out in another tab or window"],
    "session ended": ["Your session ended", "it was ended on the server, or replaced by a new sign-in"],
    "session expired": ["Your session expired", ""],
    "no valid session": ["You are not signed in", ""],
  };

  const $ = (id) => document.getElementById(id);
  const config = $("demo").dataset;
  const signInHref = $("closed-action").getAttribute("href");
  const sessionAgeMs = Number(config.sessionAge) * 1000;
  const expiryNoticeMs = Number(config.expiryNotice) * 1000;

  // What the page knows, in one place (the browser tests read it as window.demo).
  const state = (window.demo = {
    tab: Math.random().toString(16).slice(2, 6),
    connects: 0,
    expiresAt: null, // epoch ms
    sessionNotice: null, // the last notice on the session destination
    error: null, // the last ERROR frame's message
    close: null, // {code, message} of the last close
    closedAt: null, // epoch ms when the close was shown
    leaving: false,
    clockCount: 0,
    echoSentAt: null,
  });

  // -- the connection ----------------------------------------------------------------------------------------

  const client = new StompJs.Client({
    brokerURL: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.wsPath,
    connectHeaders: { "X-CSRFToken": config.csrfToken },
    // Reconnect after a network failure or a server restart; never after 1008 (see onWebSocketClose).
    reconnectDelay: 1000,
    maxReconnectDelay: 30000,
    reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
  });

  client.onConnect = (frame) => {
    state.connects += 1;
    state.error = null;
    $("closed").hidden = true;
    setStatus("connected", "connected");
    const expires = Number(frame.headers["session-expires"]);
    if (expires) setExpiry(expires);
    client.subscribe("/topic/clock", showClock);
    client.subscribe("/user/queue/notices", showNotice);
    client.subscribe("/user/queue/reply", showReply);
    client.subscribe(config.sessionDestination, onSessionNotice);
  };

  client.onStompError = (frame) => {
    state.error = frame.headers.message || "";
  };

  client.onWebSocketClose = (event) => {
    if (state.leaving) return;
    const message = state.error ?? event.reason ?? "";
    state.close = { code: event.code, message };
    if (event.code === CLOSE_POLICY_VIOLATION) {
      // The server closed on purpose (session over, or a policy the page broke): reconnecting cannot help.
      // reconnectDelay = 0 alone would not do: stompjs 7 fixed the pending attempt's delay at activate();
      // deactivate() cancels that attempt.
      client.reconnectDelay = 0;
      client.deactivate();
      showClosed(event.code, message);
    } else if (client.active) {
      setStatus("reconnecting", "reconnecting…");
      showBanner(`Connection lost (${event.code}${message ? ": " + message : ""}). Reconnecting…`, null, "warn");
    }
  };

  // -- pushes ------------------------------------------------------------------------------------------------

  function showClock(message) {
    const { time } = JSON.parse(message.body);
    state.clockCount += 1;
    $("clock").textContent = clockTime(new Date(time));
    $("clock-count").textContent = String(state.clockCount);
  }

  function showNotice(message) {
    const { text, tab, at } = JSON.parse(message.body);
    const list = $("notices");
    list.querySelector(".empty")?.remove();
    const item = document.createElement("li");
    const when = document.createElement("time");
    when.textContent = clockTime(new Date(at));
    const from = document.createElement("span");
    from.className = "muted";
    from.textContent = tab === state.tab ? "from this tab" : "from another tab";
    item.append(when, " ", text, " ", from);
    list.prepend(item);
    while (list.children.length > 5) list.lastElementChild.remove();
  }

  function showReply(message) {
    const reply = JSON.parse(message.body);
    const ms = state.echoSentAt === null ? null : Math.round(performance.now() - state.echoSentAt);
    state.echoSentAt = null;
    const box = $("echo-reply");
    box.className = "";
    box.textContent = `“${reply.echo}” back for ${reply.user}` + (ms === null ? "" : ` in ${ms} ms`);
  }

  function onSessionNotice(message) {
    const notice = JSON.parse(message.body);
    state.sessionNotice = notice;
    const expires = Date.parse(notice.expires_at);
    setExpiry(Number.isNaN(expires) ? Date.now() + notice.seconds_left * 1000 : expires);
  }

  // -- the session's lifetime ----------------------------------------------------------------------------------

  function setExpiry(epochMs) {
    state.expiresAt = epochMs;
    $("session-note").textContent = `left · expires at ${clockTime(new Date(epochMs))}`;
    renderSession();
  }

  function renderSession() {
    if (state.expiresAt === null || state.close?.code === CLOSE_POLICY_VIOLATION) return;
    const left = Math.max(0, state.expiresAt - Date.now());
    $("session-left").textContent = duration(left);
    $("session-meter").style.width = `${Math.min(100, (100 * left) / sessionAgeMs)}%`;
    const expiring = client.connected && left <= expiryNoticeMs;
    $("expiring").hidden = !expiring;
    $("expiring-left").textContent = duration(left);
    $("session-meter").classList.toggle("low", expiring);
  }

  setInterval(renderSession, 250);

  $("stay").addEventListener("click", async () => {
    const button = $("stay");
    button.disabled = true;
    try {
      const response = await post(config.stayUrl);
      if (response.ok) setExpiry((await response.json()).expires_ms);
    } finally {
      button.disabled = !client.connected;
    }
  });

  // -- the buttons ---------------------------------------------------------------------------------------------

  $("notify-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("text", $("notify-text").value);
    form.append("tab", state.tab);
    post(config.notifyUrl, form);
  });

  $("echo-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.echoSentAt = performance.now();
    client.publish({ destination: "/app/echo", body: $("echo-text").value });
  });

  $("logout").form.addEventListener("submit", () => {
    state.leaving = true; // this tab's own close is no news: the login page follows
  });

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": config.csrfToken },
      credentials: "same-origin",
    });
  }

  // -- status and closes ---------------------------------------------------------------------------------------

  function setStatus(name, text) {
    document.body.dataset.state = name;
    $("status").textContent = text;
    for (const button of document.querySelectorAll("main button")) button.disabled = name !== "connected";
  }

  function showClosed(code, message) {
    const known = SESSION_ENDS[message];
    if (known) {
      const [title, why] = known;
      showBanner(`${title} (${code})${why ? ": " + why : ""}.`, { text: "Sign in again", href: signInHref });
      const ended = message === "session expired" ? "expired" : "ended";
      $("session-left").textContent = ended;
      $("session-note").textContent = `${ended} at ${clockTime(new Date())}`;
      $("session-meter").style.width = "0";
    } else {
      const why = message ? `: ${message}` : "";
      showBanner(`The server closed the connection (${code})${why}.`, { text: "Reload", href: location.href });
    }
    $("expiring").hidden = true;
    setStatus("closed", `closed (${code})`);
    state.closedAt = Date.now();
  }

  function showBanner(text, action, kind = "error") {
    $("closed").className = `banner ${kind}`;
    $("closed-text").textContent = text;
    const link = $("closed-action");
    link.hidden = action === null;
    if (action) {
      link.textContent = action.text;
      link.setAttribute("href", action.href);
    }
    $("closed").hidden = false;
  }

  // -- formatting ----------------------------------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  function clockTime(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function duration(ms) {
    const total = Math.ceil(ms / 1000);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }

  setStatus("connecting", "connecting…");
  client.activate();
})();
