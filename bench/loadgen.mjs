// Load generator for bench/: STOMP subscribers spread over worker processes, one publisher, one JSON event per
// stdout line for the Python harness (bench/loadgen.py).
//
//   node bench/loadgen.mjs '<config JSON>'
//   node bench/loadgen.mjs @config.json        (a large config, e.g. with thousands of cookies)
//
// Config: urls (subscribers spread round-robin; the publisher uses urls[0]), subscribers, warm_subscribers,
// workers, destination, mode ("max" | "rate" | "idle" | "storm"), rate (pushes/s), window (pushes in flight,
// "max"), warmup_s, measure_s, heartbeat [cx, cy], connect_concurrency, ramp_timeout_s, connect_timeout_s,
// body_size, subprotocols, stall_s, deadline_s, connect_headers (added to CONNECT, e.g. RabbitMQ's host),
// cookies (subscriber i sends the Cookie header cookies[i]), sentinel_heartbeat_ms, sentinel_cookie and
// retry_refused ("storm"), stop_file and stable_after_ms ("reconnect"), retry_after_jitter_ms and backoff
// {base, cap, factor} ("reconnect", and "storm" with retry_refused).
//
// Events: warm (warm subscribers ready), ready, measure_start, measure_stop (end of the time window),
// result {stats, after the drain}, done, error {message}.
// "max" keeps at most `window` pushes not yet delivered to every live subscriber (closed loop), so no server
// queue grows without bound; "rate" publishes open loop at `rate`; "idle" publishes nothing.
// "storm" opens the subscribers (connect_concurrency at a time: all of them for a storm) and ends: its window
// is the ramp, its result the failures by reason, the refusals (ERROR "server busy", close 1013: with
// retry_refused a refused client tries again as the package's client helper would, see connectAll) and each
// client's time from its first byte to its RECEIPT. With sentinel_heartbeat_ms, one client connected before the
// storm heart-beats at that period throughout it and reports whether it was closed and the longest silence of the
// server.
// "reconnect" opens the subscribers (connect_concurrency at a time) as clients that reconnect the way the package's
// client helper does (see reconnectingClients), emits ready, then dropped and resubscribed as the number of
// subscribed clients falls below and comes back to what it was at ready; it ends when stop_file appears (JSON
// {last_seq, stopped_at_ms} of the pusher, whose bodies start with "seq:"), with the pushes each client lost.
// Latency = publish -> receive on the same monotonic clock (process.hrtime), across processes of this machine.

import { fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
// The package's own client helper: what a close advises, and the backoff ("reconnect" mode reconnects as it does,
// "storm" with retry_refused retries a refused client as it does).
import { DEFAULT_BACKOFF, backoffDelay, describeClose } from '../django_stomp_push/static/django_stomp_push/stomp-push.mjs';

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- latency histogram: buckets 2% wide, mergeable across workers ----------------------------------------
const LOG_BASE = Math.log(1.02);
const BUCKETS = 1200;
const bucketOf = (us) => (us < 1 ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(us) / LOG_BASE)));
const bucketUpperUs = (i) => (i === 0 ? 1 : Math.pow(1.02, i));

function percentiles(hist, ps) {
  const total = hist.reduce((a, b) => a + b, 0);
  const out = {};
  for (const p of ps) {
    if (!total) { out[p] = null; continue; }
    const rank = Math.ceil((p / 100) * total);
    let seen = 0;
    for (let i = 0; i < hist.length; i++) {
      seen += hist[i];
      if (seen >= rank) { out[p] = bucketUpperUs(i) / 1000; break; }
    }
  }
  return out;
}

// ---- STOMP over one WebSocket ---------------------------------------------------------------------------
function originOf(url) {
  const u = new URL(url);
  return `http://${u.host}`;
}

function frame(command, headers, body = '') {
  let text = command + '\n';
  for (const [k, v] of Object.entries(headers)) text += `${k}:${v}\n`;
  return text + '\n' + body + '\0';
}

function headerValue(frameText, name) {
  const at = frameText.indexOf('\n' + name + ':');
  if (at < 0) return null;
  const end = frameText.indexOf('\n', at + name.length + 2);
  return frameText.slice(at + name.length + 2, end < 0 ? undefined : end);
}

// A connect failure's reason: the error code (ECONNRESET, ECONNREFUSED, ...) or message, without addresses.
function reasonOf(err) {
  if (err.message === 'socket hang up') return 'socket hang up'; // closed before any HTTP response
  return err.code || err.message;
}

// Opens a WebSocket, CONNECTs, optionally SUBSCRIBEs (with a receipt) and resolves once that is confirmed.
// `handlers.message(conn, body)` receives each MESSAGE body; heart-beats are sent as negotiated.
function openStomp(url, cfg, subscribe, handlers, cookie = null) {
  return new Promise((resolve, reject) => {
    const conn = {
      ws: null, lastSeq: -1, lastAt: 0, open: false, hbTimer: null, startedAt: Date.now(), tookMs: 0,
      connectedAt: null, stompError: null, // the time of CONNECTED; the ERROR frame's headers, for the reconnect advice
    };
    let waitingFor = 'the WebSocket handshake';
    let settled = false;
    const fail = (message, closeCode = null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { conn.ws.terminate(); } catch { /* already gone */ }
      const err = new Error(message);
      err.stompError = conn.stompError; // what the server advised, if it said anything
      err.closeCode = closeCode;
      err.connectedAt = conn.connectedAt;
      reject(err);
    };
    const timer = setTimeout(() => fail(`timeout waiting for ${waitingFor}`), cfg.connect_timeout_s * 1000);
    const ws = new WebSocket(url, cfg.subprotocols, {
      headers: { Origin: originOf(url), ...(cookie ? { Cookie: cookie } : {}) },
      perMessageDeflate: false,
      handshakeTimeout: cfg.connect_timeout_s * 1000,
    });
    conn.ws = ws;
    ws.on('open', () => {
      const [cx, cy] = cfg.heartbeat;
      const headers = { 'accept-version': '1.2', host: '127.0.0.1', 'heart-beat': `${cx},${cy}`, ...cfg.connect_headers };
      waitingFor = 'CONNECTED';
      ws.send(frame('CONNECT', headers));
    });
    ws.on('unexpected-response', (_req, res) => fail(`HTTP ${res.statusCode} on WebSocket upgrade`));
    ws.on('error', (err) => fail(reasonOf(err)));
    ws.on('close', (code) => {
      if (conn.hbTimer) clearInterval(conn.hbTimer);
      if (conn.open) { conn.open = false; handlers.closed(conn, code); }
      fail(`closed ${code} before subscribed`, code);
    });
    ws.on('message', (data) => {
      const text = typeof data === 'string' ? data : data.toString('latin1');
      let start = 0;
      while (start < text.length) {
        let end = text.indexOf('\0', start);
        if (end < 0) end = text.length;
        let f = start;
        while (f < end && (text.charCodeAt(f) === 10 || text.charCodeAt(f) === 13)) f++;
        if (f === end) { if (end > start) handlers.heartbeat(conn); start = end + 1; continue; }
        const nl = text.indexOf('\n', f);
        const command = text.slice(f, nl < 0 ? end : nl);
        if (command === 'MESSAGE') {
          const bodyAt = text.indexOf('\n\n', f) + 2;
          handlers.message(conn, text, bodyAt);
        } else if (command === 'CONNECTED') {
          conn.connectedAt = Date.now();
          const hb = headerValue(text.slice(f, end), 'heart-beat');
          const [sx, sy] = (hb || '0,0').split(',').map(Number);
          const every = cfg.heartbeat[0] && sy ? Math.max(cfg.heartbeat[0], sy) : 0;
          conn.serverEveryMs = cfg.heartbeat[1] && sx ? Math.max(cfg.heartbeat[1], sx) : 0;
          if (every) conn.hbTimer = setInterval(() => { if (ws.readyState === 1) ws.send('\n'); }, every);
          if (subscribe) {
            waitingFor = 'RECEIPT';
            ws.send(frame('SUBSCRIBE', { id: '0', destination: cfg.destination, ack: 'auto', receipt: 'sub-0' }));
          } else {
            ready();
          }
        } else if (command === 'RECEIPT') {
          ready();
        } else if (command === 'ERROR') {
          const head = text.slice(f, end);
          const message = headerValue(head, 'message');
          conn.stompError = { headers: { message: message || '', reconnect: headerValue(head, 'reconnect'), 'retry-after': headerValue(head, 'retry-after') } };
          handlers.error(conn, message || 'ERROR frame');
          fail(`ERROR frame: ${message}`);
        }
        start = end + 1;
      }
    });
    function ready() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.open = true;
      conn.lastAt = Date.now();
      conn.tookMs = conn.lastAt - conn.startedAt;
      resolve(conn);
    }
  });
}

// The wait in ms before the next attempt after a close (what describeClose says of it), as the package's client helper
// decides it: `later` with a retry-after waits that plus up to `jitterMs`; anything else, the full-jitter backoff of
// attempt number `attempt`.
function retryDelay(close, attempt, backoff, jitterMs) {
  return close.reconnect === 'later' && close.retryAfter !== null
    ? close.retryAfter + Math.round(Math.random() * jitterMs)
    : backoffDelay(attempt, backoff);
}

// ---- reconnecting clients ("reconnect" mode) --------------------------------------------------------------
// Each client reconnects as the package's client helper (stomp-push.mjs) does, with its describeClose and
// backoffDelay: `reconnect: never` ends it (a terminal state); `later` with a retry-after waits that many ms plus up
// to retry_after_jitter_ms; `now`, or a close without an ERROR frame, waits a full-jitter backoff whose attempt
// count starts again after stable_after_ms connected. A client's first connection goes to its own server
// (urls[i % n]); a reconnect goes to a server picked at random, and on to the next one while they refuse the TCP
// connection, as a load balancer in front of them would. Every push's body starts with its sequence number: a gap
// between two pushes a client received while it stayed subscribed is a push lost while subscribed; a gap across a
// reconnect, pushes sent while it was away.
function reconnectingClients(cfg, specs, reportSubscribed) {
  const backoff = { ...DEFAULT_BACKOFF, ...cfg.backoff };
  const clients = specs.map(([index, home, cookie]) => ({
    index, home, cookie, state: 'connecting', everSubscribed: false, attempt: 0, conn: null, subscribedAt: 0,
    lastSeq: -1, fresh: true, away: false, lostSub: 0, lostAway: 0, duplicates: 0, connections: 0, wake: null,
  }));
  const closes = {}, failures = {};
  const count = (table, key) => { table[key] = (table[key] || 0) + 1; };
  let subscribed = 0, terminal = 0, stopping = false, dirty = false;
  const ticker = setInterval(() => { if (dirty) { dirty = false; reportSubscribed(subscribed); } }, 50);

  // The initial ramp: at most `concurrency` opening at a time, until every client was subscribed once (or ended).
  let ramping = true, opening = 0;
  const queue = [];
  const acquire = async () => { while (ramping && opening >= cfg.concurrency) await new Promise((r) => queue.push(r)); opening++; };
  const release = () => { opening--; const next = queue.shift(); if (next) next(); };
  let rampDone;
  const ramp = new Promise((resolve) => { rampDone = resolve; });
  const rampTimer = setTimeout(finishRamp, cfg.ramp_timeout_s * 1000);
  function finishRamp() {
    if (!ramping) return;
    ramping = false;
    clearTimeout(rampTimer);
    queue.splice(0).forEach((r) => r());
    rampDone({ subscribed, terminal, failures: { ...failures } });
  }
  const checkRamp = () => { if (ramping && clients.every((c) => c.everSubscribed || c.state === 'terminal')) finishRamp(); };

  const handlersOf = (c) => ({
    message(_conn, text, bodyAt) {
      const seq = Number(text.slice(bodyAt, text.indexOf(':', bodyAt)));
      if (!(seq > c.lastSeq)) { c.duplicates++; return; }
      const gap = seq - c.lastSeq - 1;
      if (gap > 0) { if (c.fresh && c.away) c.lostAway += gap; else c.lostSub += gap; }
      c.lastSeq = seq; c.fresh = false; c.away = false;
    },
    heartbeat() {}, error() {},
    closed(conn, code) { if (conn.closedWith) conn.closedWith(code); },
  });

  const otherUrls = (first) => {
    if (first) return [first, ...cfg.urls.filter((u) => u !== first)];
    const start = Math.floor(Math.random() * cfg.urls.length);
    return cfg.urls.map((_, k) => cfg.urls[(start + k) % cfg.urls.length]);
  };

  async function open(c, urls) {
    let failure = null;
    for (const url of urls) {
      const limited = ramping;
      if (limited) await acquire();
      try {
        return { conn: await openStomp(url, cfg, true, handlersOf(c), c.cookie) };
      } catch (err) {
        failure = err;
        if (err.message !== 'ECONNREFUSED' || stopping) break;
      } finally {
        if (limited) release();
      }
    }
    return { failure };
  }

  async function run(c) {
    let first = true;
    while (!stopping) {
      const { conn, failure } = await open(c, otherUrls(first ? c.home : null));
      first = false;
      let close, connectedAt;
      if (conn) {
        if (stopping) { try { conn.ws.close(1000); } catch { /* gone */ } return; }
        const closed = new Promise((resolve) => { conn.closedWith = resolve; });
        c.conn = conn; c.state = 'subscribed'; c.subscribedAt = Date.now(); c.connections++;
        c.everSubscribed = true; subscribed++; dirty = true;
        checkRamp();
        const code = await closed;
        subscribed--; dirty = true; c.conn = null; c.away = true; c.fresh = true;
        if (stopping) return;
        close = describeClose({ code }, conn.stompError);
        connectedAt = conn.connectedAt;
        count(closes, `${close.code} ${close.message || '(no ERROR frame)'}`);
      } else {
        if (stopping) return;
        close = describeClose({ code: failure.closeCode ?? 1006 }, failure.stompError);
        connectedAt = failure.connectedAt;
        count(failures, failure.message);
      }
      if (connectedAt !== null && Date.now() - connectedAt >= cfg.stable_after_ms) c.attempt = 0;
      if (close.reconnect === 'never') { c.state = 'terminal'; terminal++; checkRamp(); return; }
      const delay = retryDelay(close, c.attempt, backoff, cfg.retry_after_jitter_ms);
      c.attempt += 1;
      c.state = 'waiting';
      await new Promise((resolve) => { c.wake = resolve; setTimeout(resolve, delay); });
      c.wake = null;
      if (c.state === 'waiting') c.state = 'connecting';
    }
  }
  for (const c of clients) run(c);

  // The pusher stopped at stoppedAtMs after push lastSeq (and the harness waited for the last ones to arrive).
  function stop(lastSeq, stoppedAtMs) {
    stopping = true;
    clearInterval(ticker);
    finishRamp();
    let silent = 0, still = 0, reconnects = 0, awayClients = 0;
    let lostSub = 0, lostSubMax = 0, lostAway = 0, lostAwayMax = 0, duplicates = 0;
    for (const c of clients) {
      const tail = Math.max(0, lastSeq - c.lastSeq);
      if (c.state === 'subscribed' && c.subscribedAt <= stoppedAtMs - 1000) {
        c.lostSub += tail; // subscribed for a second of pushes at least: each should have arrived
        if (c.fresh) silent++;
      } else {
        c.lostAway += tail;
      }
      if (c.state === 'subscribed') still++;
      if (c.connections > 1 || c.state !== 'subscribed') awayClients++;
      reconnects += Math.max(0, c.connections - 1);
      lostSub += c.lostSub; lostSubMax = Math.max(lostSubMax, c.lostSub);
      lostAway += c.lostAway; lostAwayMax = Math.max(lostAwayMax, c.lostAway);
      duplicates += c.duplicates;
      if (c.wake) c.wake();
      if (c.conn) { try { c.conn.ws.close(1000); } catch { /* gone */ } }
    }
    return {
      subscribed: still, terminal, lostSub, lostSubMax, lostAway, lostAwayMax, silent, duplicates, reconnects,
      awayClients, closes, failures,
    };
  }
  return { ramp, stop };
}

// ---- worker: holds subscribers ---------------------------------------------------------------------------
async function worker() {
  let cfg = null;
  const conns = [];
  let measuring = false;
  let fromSeq = Infinity; // deliveries of pushes sent from the window's start on, counted per push
  let perSeq = [];
  let mark = null;
  let deliveries = 0, preDeliveries = 0, gaps = 0, reordered = 0, heartbeats = 0, closedAfterReady = 0;
  let hist = new Array(BUCKETS).fill(0);
  const closeCodes = {};
  const errors = {};
  let dirty = false;

  const handlers = {
    message(conn, text, bodyAt) {
      const c1 = text.indexOf(':', bodyAt);
      const c2 = text.indexOf(':', c1 + 1);
      const seq = Number(text.slice(bodyAt, c1));
      const sentUs = Number(text.slice(c1 + 1, c2));
      if (seq > conn.lastSeq) {
        gaps += seq - conn.lastSeq - 1;
        conn.lastSeq = seq;
      } else {
        reordered++;
      }
      conn.lastAt = Date.now();
      dirty = true;
      if (seq >= fromSeq) perSeq[seq - fromSeq] = (perSeq[seq - fromSeq] || 0) + 1;
      if (measuring) {
        deliveries++;
        hist[bucketOf(nowUs() - sentUs)]++;
      } else {
        preDeliveries++;
      }
    },
    heartbeat() { heartbeats++; },
    closed(_conn, code) { closedAfterReady++; closeCodes[code] = (closeCodes[code] || 0) + 1; dirty = true; },
    error(_conn, message) { errors[message] = (errors[message] || 0) + 1; },
  };

  // Opens clients [url, cookie], `concurrency` at a time; returns how many succeeded, the failures by reason and a
  // histogram of the successful ones' times from their first byte to their RECEIPT. A refusal is an ERROR advising
  // `reconnect: later` (django-stomp-push's "server busy", then close 1013) or a close 1013 without one: `refusals`
  // counts every refused attempt, `refused_first` the clients refused at their first. With retry_refused ("storm"),
  // a refused client tries again as the package's client helper (stomp-push.mjs) would: after the retry-after plus
  // up to retry_after_jitter_ms, or without a retry-after after its backoff (describeClose, backoffDelay), leaving
  // its place among the `concurrency` while it waits; until subscribed, or until an attempt would start past
  // ramp_timeout_s. Its time then runs from its first attempt's first byte. Any other failure ends a client.
  async function connectAll(clients) {
    let ok = 0, failed = 0, refusals = 0, refusedFirst = 0;
    const reasons = {};
    const took = new Array(BUCKETS).fill(0);
    const started = Date.now();
    const lastStart = started + cfg.ramp_timeout_s * 1000;
    const backoff = { ...DEFAULT_BACKOFF, ...cfg.backoff };
    const failure = (reason) => { failed++; reasons[reason] = (reasons[reason] || 0) + 1; };
    let free = cfg.concurrency;
    const queue = [];
    const acquire = () => (free > 0 ? (free--, Promise.resolve()) : new Promise((resolve) => queue.push(resolve)));
    const release = () => { const next = queue.shift(); if (next) next(); else free++; };
    const open = async ([url, cookie]) => {
      let firstAt = null;
      for (let attempt = 0; ; attempt++) {
        await acquire();
        if (Date.now() > lastStart) { release(); failure(attempt ? 'refused until the ramp timeout' : 'ramp timeout'); return; }
        firstAt ??= Date.now();
        let conn = null, err = null;
        try { conn = await openStomp(url, cfg, true, handlers, cookie); } catch (e) { err = e; }
        release();
        if (conn) {
          conns.push(conn);
          took[bucketOf((conn.lastAt - firstAt) * 1000)]++;
          ok++;
          return;
        }
        const close = describeClose({ code: err.closeCode ?? 1006 }, err.stompError);
        const refused = close.reconnect === 'later' || close.code === 1013;
        if (refused) { refusals++; if (!attempt) refusedFirst++; }
        if (!refused || !cfg.retry_refused) { failure(err.message); return; }
        const delay = retryDelay(close, attempt, backoff, cfg.retry_after_jitter_ms);
        if (Date.now() + delay > lastStart) { failure('refused until the ramp timeout'); return; }
        await sleep(delay);
      }
    };
    await Promise.all(clients.map(open));
    return { ok, failed, errors: reasons, took, refusals, refused_first: refusedFirst };
  }

  // Lowest sequence number every live subscriber has received: the publisher's window. Subscribers silent for
  // stall_s are left out while others progress (a dead server process must not stop the measurement), but
  // not when all are silent (the server is just slow).
  let lastWatermark;
  setInterval(() => {
    if (!dirty || !cfg) return;
    dirty = false;
    const stallBefore = Date.now() - cfg.stall_s * 1000;
    let minAll = Infinity, minFresh = Infinity, stalled = 0;
    for (const c of conns) {
      if (!c.open) continue;
      if (c.lastSeq < minAll) minAll = c.lastSeq;
      if (c.lastAt < stallBefore) stalled++;
      else if (c.lastSeq < minFresh) minFresh = c.lastSeq;
    }
    const min = minFresh !== Infinity ? minFresh : minAll;
    const watermark = min === Infinity ? null : min;
    if (watermark !== lastWatermark) {
      lastWatermark = watermark;
      process.send({ type: 'watermark', value: watermark, stalled });
    }
  }, 5);
  // Stalled subscribers are re-counted on a slower beat even without new messages.
  setInterval(() => { dirty = true; }, 250);

  process.on('disconnect', () => process.exit(0));
  let reconnecting = null;
  process.on('message', async (msg) => {
    if (msg.cmd === 'ping') {
      process.send({ type: 'pong' });
    } else if (msg.cmd === 'rc-start') {
      reconnecting = reconnectingClients(msg.cfg, msg.clients, (value) => process.send({ type: 'subscribed', value }));
      process.send({ type: 'rc-ready', ...(await reconnecting.ramp) });
    } else if (msg.cmd === 'rc-stop') {
      process.send({ type: 'rc-report', ...reconnecting.stop(msg.last_seq, msg.stopped_at_ms) });
    } else if (msg.cmd === 'connect') {
      cfg = msg.cfg;
      const result = await connectAll(msg.clients);
      process.send({ type: 'connected', ...result });
    } else if (msg.cmd === 'arm') {
      const now = Date.now();
      for (const c of conns) c.lastAt = now; // the ramp's duration is not a stall
      dirty = true;
    } else if (msg.cmd === 'measure') {
      deliveries = 0; heartbeats = 0; closedAfterReady = 0; gaps = 0; reordered = 0;
      for (const k of Object.keys(closeCodes)) delete closeCodes[k];
      hist = new Array(BUCKETS).fill(0);
      for (const c of conns) c.seqAtStart = c.lastSeq;
      fromSeq = msg.fromSeq;
      perSeq = [];
      measuring = true;
    } else if (msg.cmd === 'mark') {
      // End of the time window: what was received in it.
      measuring = false;
      let silent = 0, open = 0;
      for (const c of conns) {
        if (!c.open) continue;
        open++;
        if (c.lastSeq === c.seqAtStart) silent++;
      }
      mark = {
        type: 'mark', deliveries, preDeliveries, gaps, reordered, heartbeats, closed: closedAfterReady,
        closeCodes: { ...closeCodes }, errors, hist, open, silent,
      };
      process.send(mark);
    } else if (msg.cmd === 'report') {
      // After the drain: how many deliveries the pushes sent in the window got.
      let windowDeliveries = 0;
      for (let i = 0; i < msg.toSeq - fromSeq && i < perSeq.length; i++) windowDeliveries += perSeq[i] || 0;
      process.send({ ...mark, type: 'report', windowDeliveries });
    } else if (msg.cmd === 'close') {
      for (const c of conns) { try { c.ws.close(1000); } catch { /* gone */ } }
      setTimeout(() => process.exit(0), 500);
    }
  });
}

// ---- coordinator: workers, publisher, phases --------------------------------------------------------------
function emit(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

async function coordinator(cfg) {
  const defaults = {
    workers: 2, destination: '/topic/bench', mode: 'max', rate: 8, window: 16, warmup_s: 2, measure_s: 5,
    heartbeat: [0, 0], connect_concurrency: 64, ramp_timeout_s: 120, connect_timeout_s: 30, body_size: 64,
    subprotocols: [], stall_s: 5, drain_s: 2, deadline_s: 600, warm_subscribers: 0, settle_s: 0,
    connect_headers: {}, cookies: null, sentinel_heartbeat_ms: 0, sentinel_cookie: null,
    stop_file: null, retry_after_jitter_ms: 1000, stable_after_ms: 10000, backoff: {},
  };
  cfg = { ...defaults, ...cfg };
  const deadline = setTimeout(() => { emit('error', { message: `deadline of ${cfg.deadline_s}s reached` }); process.exit(3); }, cfg.deadline_s * 1000);

  const nWorkers = Math.max(1, Math.min(cfg.workers, cfg.subscribers || 1));
  const workerCfg = { ...cfg, cookies: null, concurrency: Math.max(1, Math.ceil(cfg.connect_concurrency / nWorkers)) };
  const workers = [];
  const watermarks = new Array(nWorkers).fill(-1); // -1: nothing delivered yet; null: no live subscriber
  const stalledBy = new Array(nWorkers).fill(0);
  let onWatermark = () => {};
  const subscribedBy = new Array(nWorkers).fill(0); // "reconnect": each worker's subscribed clients
  let onSubscribed = () => {};
  for (let i = 0; i < nWorkers; i++) {
    const child = fork(fileURLToPath(import.meta.url), ['worker'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.on('message', (msg) => {
      if (msg.type === 'watermark') { watermarks[i] = msg.value; stalledBy[i] = msg.stalled; onWatermark(); }
      else if (msg.type === 'subscribed') { subscribedBy[i] = msg.value; onSubscribed(); }
      else if (child.pending) { const p = child.pending; child.pending = null; p(msg); }
    });
    child.on('exit', (code) => { if (code && !child.finished) { emit('error', { message: `worker ${i} exited ${code}` }); } });
    workers.push(child);
  }
  const ask = (child, msg) => new Promise((resolve) => { child.pending = resolve; child.send(msg); });

  // Subscriber i goes to urls[i % urls.length] with cookies[i], and to worker i % nWorkers.
  async function connectRange(from, to) {
    const slices = workers.map(() => []);
    for (let i = from; i < to; i++) {
      slices[i % nWorkers].push([cfg.urls[i % cfg.urls.length], cfg.cookies ? cfg.cookies[i] : null]);
    }
    const results = await Promise.all(workers.map((w, k) => ask(w, { cmd: 'connect', clients: slices[k], cfg: workerCfg })));
    const errors = {};
    const took = new Array(BUCKETS).fill(0);
    for (const r of results) {
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] || 0) + v;
      r.took.forEach((v, i) => { took[i] += v; });
    }
    const sum = (k) => results.reduce((a, r) => a + r[k], 0);
    return { ok: sum('ok'), failed: sum('failed'), errors, took, refusals: sum('refusals'), refused_first: sum('refused_first') };
  }

  let publisher = null, sent = 0, publishing = false, publisherClosed = null; // (shutdown() reads publisher)
  await Promise.all(workers.map((w) => ask(w, { cmd: 'ping' }))); // forked and listening: not part of any ramp
  if (cfg.mode === 'storm') {
    await storm();
    return;
  }
  if (cfg.mode === 'reconnect') {
    await reconnect();
    return;
  }

  const t0 = Date.now();
  const warm = Math.min(cfg.warm_subscribers, cfg.subscribers);
  let connected = { ok: 0, failed: 0, errors: {} };
  if (warm) {
    connected = await connectRange(0, warm);
    await sleep(500);
    emit('warm', { connected: connected.ok, failed: connected.failed });
  }
  const rest = await connectRange(warm, cfg.subscribers);
  const rampErrors = { ...connected.errors };
  for (const [k, v] of Object.entries(rest.errors)) rampErrors[k] = (rampErrors[k] || 0) + v;
  connected = { ok: connected.ok + rest.ok, failed: connected.failed + rest.failed, errors: rampErrors };
  emit('ready', { connected: connected.ok, failed: connected.failed, errors: connected.errors, ramp_s: (Date.now() - t0) / 1000 });
  if (cfg.settle_s) await sleep(cfg.settle_s * 1000);

  // Publisher.
  const publisherErrors = {};
  if (cfg.mode !== 'idle') {
    try {
      publisher = await openStomp(cfg.urls[0], { ...cfg, heartbeat: [0, 0] }, false, {
        message() {}, heartbeat() {}, error(_c, m) { publisherErrors[m] = (publisherErrors[m] || 0) + 1; },
        closed(_c, code) { publisherClosed = code; },
      });
    } catch (err) {
      emit('error', { message: `publisher: ${err.message}` });
      shutdown(2);
      return;
    }
  }
  const pad = 'x'.repeat(cfg.body_size);
  const publishOne = () => {
    const head = `${sent}:${nowUs()}:`;
    const body = head + pad.slice(head.length);
    publisher.ws.send(frame('SEND', { destination: cfg.destination, 'content-type': 'text/plain', 'content-length': String(body.length) }, body));
    sent++;
  };
  const low = () => {
    let min = Infinity;
    for (const w of watermarks) if (w !== null && w < min) min = w;
    return min === Infinity ? sent - 1 : min; // nobody live: do not block
  };
  async function publishLoop() {
    publishing = true;
    if (cfg.mode === 'max') {
      while (publishing && publisherClosed === null) {
        if (sent - 1 - low() < cfg.window && publisher.ws.bufferedAmount < (1 << 20)) {
          publishOne();
          if (sent % 64 === 0) await new Promise((r) => setImmediate(r));
        } else {
          await new Promise((r) => { onWatermark = r; setTimeout(r, 5); });
          onWatermark = () => {};
        }
      }
    } else if (cfg.mode === 'rate') {
      const start = nowUs();
      while (publishing && publisherClosed === null) {
        const due = start + (sent * 1e6) / cfg.rate;
        const wait = (due - nowUs()) / 1000;
        if (wait > 0) await sleep(wait);
        if (publishing) publishOne();
      }
    }
  }
  workers.forEach((w) => w.send({ cmd: 'arm' }));
  const loop = publishLoop();

  await sleep(cfg.warmup_s * 1000);
  const fromSeq = sent;
  workers.forEach((w) => w.send({ cmd: 'measure', fromSeq }));
  const mStart = Date.now();
  emit('measure_start');
  await sleep(cfg.measure_s * 1000);
  await Promise.all(workers.map((w) => ask(w, { cmd: 'mark' })));
  const elapsed = (Date.now() - mStart) / 1000;
  emit('measure_stop');
  const toSeq = sent;
  const sentInWindow = toSeq - fromSeq;
  publishing = false;
  await loop;
  // Give the pushes of the window up to drain_s to arrive everywhere.
  const drainUntil = Date.now() + cfg.drain_s * 1000;
  while (cfg.mode !== 'idle' && Date.now() < drainUntil && low() < toSeq - 1) await sleep(20);
  const reports = await Promise.all(workers.map((w) => ask(w, { cmd: 'report', toSeq })));
  const sum = (k) => reports.reduce((a, r) => a + r[k], 0);
  const hist = new Array(BUCKETS).fill(0);
  const closeCodes = {};
  const errors = { ...publisherErrors };
  for (const r of reports) {
    r.hist.forEach((v, i) => { hist[i] += v; });
    for (const [k, v] of Object.entries(r.closeCodes)) closeCodes[k] = (closeCodes[k] || 0) + v;
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] || 0) + v;
  }
  const deliveries = sum('deliveries');
  const lat = percentiles(hist, [50, 90, 99, 100]);
  emit('result', {
    elapsed_s: elapsed,
    deliveries,
    deliveries_per_s: deliveries / elapsed,
    pushes_sent: sentInWindow,
    pushes_per_s: sentInWindow / elapsed,
    window_deliveries: sum('windowDeliveries'),
    expected_deliveries: sentInWindow * sum('open'),
    pre_deliveries: sum('preDeliveries'),
    gaps: sum('gaps'),
    reordered: sum('reordered'),
    heartbeats_received: sum('heartbeats'),
    closed: sum('closed'),
    close_codes: closeCodes,
    open: sum('open'),
    silent: sum('silent'),
    stalled: stalledBy.reduce((a, b) => a + b, 0),
    publisher_closed: publisherClosed,
    errors,
    p50_ms: lat[50], p90_ms: lat[90], p99_ms: lat[99], max_ms: lat[100],
  });
  shutdown(0);

  // All subscribers at once (connect_concurrency of them in flight), the window being the ramp.
  async function storm() {
    const sentinel = { conn: null, closed: null, error: null, lastAt: 0, maxGapMs: 0 };
    if (cfg.sentinel_heartbeat_ms) {
      const every = cfg.sentinel_heartbeat_ms;
      const heard = () => {
        const now = Date.now();
        if (sentinel.lastAt) sentinel.maxGapMs = Math.max(sentinel.maxGapMs, now - sentinel.lastAt);
        sentinel.lastAt = now;
      };
      try {
        sentinel.conn = await openStomp(cfg.urls[0], { ...cfg, heartbeat: [every, every] }, true, {
          message: heard, heartbeat: heard, error(_c, m) { sentinel.error = m; }, closed(_c, code) { sentinel.closed = code; },
        }, cfg.sentinel_cookie);
      } catch (err) {
        emit('error', { message: `sentinel: ${err.message}` });
        shutdown(2);
        return;
      }
      sentinel.lastAt = Date.now();
    }
    emit('measure_start');
    const t0 = Date.now();
    const r = await connectRange(0, cfg.subscribers);
    const ramp = (Date.now() - t0) / 1000;
    emit('measure_stop');
    const refused = { refusals: r.refusals, refused_first: r.refused_first };
    emit('ready', { connected: r.ok, failed: r.failed, errors: r.errors, ramp_s: ramp, ...refused });
    const took = percentiles(r.took, [50, 90, 99, 100]);
    const sentinelSilence = sentinel.lastAt ? Math.max(sentinel.maxGapMs, Date.now() - sentinel.lastAt) : null;
    emit('result', {
      elapsed_s: ramp, connected: r.ok, failed: r.failed, errors: r.errors, connects_per_s: r.ok / ramp, ...refused,
      p50_ms: took[50], p90_ms: took[90], p99_ms: took[99], max_ms: took[100],
      sentinel: sentinel.conn ? {
        closed: sentinel.closed, error: sentinel.error, max_silence_ms: sentinelSilence,
        server_heartbeat_ms: sentinel.conn.serverEveryMs,
      } : null,
    });
    if (sentinel.conn) { try { sentinel.conn.ws.close(1000); } catch { /* gone */ } }
    shutdown(0);
  }

  // Clients that reconnect by themselves through a deploy; ends when the harness writes cfg.stop_file.
  async function reconnect() {
    const slices = workers.map(() => []);
    for (let i = 0; i < cfg.subscribers; i++) {
      slices[i % nWorkers].push([i, cfg.urls[i % cfg.urls.length], cfg.cookies ? cfg.cookies[i] : null]);
    }
    const t0 = Date.now();
    let ready = false; // a stop file before every client is subscribed: the harness gave up on this run
    const early = setInterval(() => {
      if (!ready && existsSync(cfg.stop_file)) { emit('error', { message: 'stopped before the clients were subscribed' }); shutdown(2); }
    }, 200);
    const ramps = await Promise.all(workers.map((w, k) => ask(w, { cmd: 'rc-start', clients: slices[k], cfg: workerCfg })));
    ready = true;
    clearInterval(early);
    ramps.forEach((r, k) => { subscribedBy[k] = r.subscribed; });
    const expected = ramps.reduce((a, r) => a + r.subscribed, 0);
    const errors = {};
    for (const r of ramps) for (const [k, v] of Object.entries(r.failures)) errors[k] = (errors[k] || 0) + v;
    emit('ready', { connected: expected, failed: cfg.subscribers - expected, errors, ramp_s: (Date.now() - t0) / 1000 });
    emit('measure_start');
    let dropped = false, back = false;
    onSubscribed = () => {
      const now = subscribedBy.reduce((a, b) => a + b, 0);
      if (!dropped && now < expected) { dropped = true; emit('dropped', { subscribed: now }); }
      else if (dropped && !back && now >= expected) { back = true; emit('resubscribed', { subscribed: now }); }
    };
    while (!existsSync(cfg.stop_file)) await sleep(100);
    const stop = JSON.parse(readFileSync(cfg.stop_file, 'utf8'));
    const reports = await Promise.all(workers.map((w) => ask(w, { cmd: 'rc-stop', ...stop })));
    emit('measure_stop');
    const sum = (k) => reports.reduce((a, r) => a + r[k], 0);
    const max = (k) => reports.reduce((a, r) => Math.max(a, r[k]), 0);
    const merge = (k) => {
      const out = {};
      for (const r of reports) for (const [key, v] of Object.entries(r[k])) out[key] = (out[key] || 0) + v;
      return out;
    };
    emit('result', {
      clients: cfg.subscribers, subscribed_at_ready: expected, subscribed: sum('subscribed'), terminal: sum('terminal'),
      lost_subscribed: sum('lostSub'), lost_subscribed_max: max('lostSubMax'), lost_away: sum('lostAway'),
      lost_away_max: max('lostAwayMax'), away_clients: sum('awayClients'), silent: sum('silent'),
      duplicates: sum('duplicates'),
      reconnects: sum('reconnects'), closes: merge('closes'), failures: merge('failures'),
      resubscribed: back, last_seq: stop.last_seq,
    });
    shutdown(0);
  }

  function shutdown(code) {
    if (publisher) { try { publisher.ws.close(1000); } catch { /* gone */ } }
    for (const w of workers) { w.finished = true; try { w.send({ cmd: 'close' }); } catch { /* gone */ } }
    setTimeout(() => { clearTimeout(deadline); emit('done'); process.exit(code); }, 700);
  }
}

if (process.argv[2] === 'worker') {
  worker();
} else {
  const arg = process.argv[2] || '{}';
  coordinator(JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg)).catch((err) => { emit('error', { message: String(err && err.stack || err) }); process.exit(2); });
}
