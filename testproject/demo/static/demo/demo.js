/* The demo page: one STOMP connection bound to the Django session (see templates/demo/index.html).
 *
 * Shows /topic/clock, the user's notices, /app/echo replies and the session's remaining lifetime. The package's
 * stomp-push helper (django_stomp_push/static/django_stomp_push/stomp-push.js) keeps the connection: it reconnects
 * when the server says so (after the server's retry-after, or a jittered backoff), subscribes again, and stops
 * for good when the session ended or the server refused the page. The header shows which, in words.
 */
(() => {
  "use strict";

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
    connection: null, // the helper's state: {name: connecting | connected | waiting | stopped, attempt, ...}
    close: null, // {code, message} of the last close (message: the ERROR frame's, "" without one)
    closedAt: null, // epoch ms when the close was shown
    leaving: false,
    clockCount: 0,
    echoSentAt: null,
  });

  // -- the connection ----------------------------------------------------------------------------------------

  const connection = new StompPush.Connection({
    Client: StompJs.Client,
    stomp: {
      brokerURL: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.wsPath,
      connectHeaders: { "X-CSRFToken": config.csrfToken },
    },
    backoff: { base: 1000, cap: 15000 }, // full jitter: each wait is drawn from [0, min(cap, base × 2^attempt)] ms
    onStateChange: showConnection,
    onConnect: (frame) => {
      state.connects += 1;
      const expires = Number(frame.headers["session-expires"]);
      if (expires) setExpiry(expires);
    },
    onSessionEnded: (reason, close) => showStopped(close),
    onRefused: (reason, close) => showStopped(close),
  });

  // Subscribed once: the helper subscribes again, with the same callbacks, after every reconnect.
  connection.subscribe("/topic/clock", showClock);
  connection.subscribe("/user/queue/notices", showNotice);
  connection.subscribe("/user/queue/reply", showReply);
  connection.subscribe(config.sessionDestination, onSessionNotice);

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
    if (state.expiresAt === null || connection.state.name === "stopped") return;
    const left = Math.max(0, state.expiresAt - Date.now());
    $("session-left").textContent = duration(left);
    $("session-meter").style.width = `${Math.min(100, (100 * left) / sessionAgeMs)}%`;
    const expiring = connection.connected && left <= expiryNoticeMs;
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
      button.disabled = !connection.connected;
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
    connection.publish({ destination: "/app/echo", body: $("echo-text").value });
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

  // -- the connection's state, in the header and in words ----------------------------------------------------

  let lastClose = null; // the close the helper is reconnecting after

  function showConnection(now) {
    state.connection = now;
    if (state.leaving) return;
    if (now.close) state.close = { code: now.close.code, message: now.close.message };
    if (now.name === "connected") {
      $("closed").hidden = true;
      setStatus("connected", "connected");
    } else if (now.name === "connecting" && now.attempt === 0) {
      setStatus("connecting", "connecting…");
    } else if (now.name === "connecting") {
      setStatus("reconnecting", "reconnecting…");
      $("closed-text").textContent = `${closeInWords(lastClose)} Reconnecting now…`;
    } else if (now.name === "waiting") {
      lastClose = now.close;
      setStatus("reconnecting", "reconnecting…");
      showBanner(`${closeInWords(now.close)} Reconnecting…`, null, "warn");
    }
    renderWait();
  }

  // While the helper waits, count the seconds down in the header and the banner.
  function renderWait() {
    const now = state.connection;
    if (state.leaving || !now || now.name !== "waiting") return;
    const seconds = Math.max(1, Math.ceil((now.until - Date.now()) / 1000));
    $("status").textContent = `reconnecting in ${seconds} s`;
    $("closed-text").textContent = `${closeInWords(now.close)} Reconnecting in ${seconds} s…`;
  }

  setInterval(renderWait, 250);

  /** Why the connection closed, for a person: the ERROR frame's message, or what a close without one means. */
  function closeInWords(close) {
    if (close.code === 1006) {
      return "Lost the connection to the server (1006): it closed without a word, so the network failed or the server stopped abruptly.";
    }
    if (close.reconnect === "later") {
      return `The server asked this page to come back later (${close.code}: ${close.message || close.reason}).`;
    }
    const why = close.message || close.reason;
    return `The server closed the connection (${close.code}${why ? ": " + why : ""}).`;
  }

  function setStatus(name, text) {
    document.body.dataset.state = name;
    $("status").textContent = text;
    for (const button of document.querySelectorAll("main button")) button.disabled = name !== "connected";
  }

  // The helper stopped for good: the session is gone, or the server refused what the page did.
  function showStopped(close) {
    if (state.leaving) return;
    const { code, message } = close;
    const known = SESSION_ENDS[message];
    if (known) {
      const [title, why] = known;
      showBanner(`${title} (${code})${why ? ": " + why : ""}.`, { text: "Sign in again", href: signInHref });
      const ended = message === "session expired" ? "expired" : "ended";
      $("session-left").textContent = ended;
      $("session-note").textContent = `${ended} at ${clockTime(new Date())}`;
      $("session-meter").style.width = "0";
      $("who-label").textContent = "No longer signed in as";
      $("logout-form").hidden = true;
      setStatus("closed", message === "session expired" ? "session expired" : "signed out");
    } else {
      const why = message ? `: ${message}` : "";
      showBanner(`The server refused this page (${code}${why}); reconnecting would fail the same way.`, {
        text: "Reload",
        href: location.href,
      });
      setStatus("closed", `stopped (${code})`);
    }
    $("expiring").hidden = true;
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

  connection.start();
})();
