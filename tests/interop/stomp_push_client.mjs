// The stomp-push helper (django_stomp_push/static/django_stomp_push/stomp-push.mjs) around a real @stomp/stompjs 7
// Client on Node's `ws`, driven by tests/interop/test_stomp_push.py through tests/interop/stomp_push.py.
//
// Usage: node stomp_push_client.mjs '<json options>'
//   options: {url, cookie, origin, instances (default 1), helper: {backoff, retryAfterJitter, stableAfter},
//             proxy: true to count TCP connections through a local proxy in front of `url`,
//             server: {mode, retryAfter, holdMs} to run a test-only STOMP server here instead of using `url`}
//   server modes (a few lines of `ws`, no STOMP beyond CONNECT):
//     later  answer CONNECT with CONNECTED, then ERROR reconnect:later retry-after:<retryAfter>, close 1013
//     drop   drop every WebSocket as soon as it opens, without a close frame (the client sees 1006)
//     hold   answer CONNECT with CONNECTED, drop the WebSocket <holdMs> later without a close frame
// Commands arrive on stdin, one JSON object a line ("instance" defaults to 0):
//   {"cmd": "subscribe", "destination": "/topic/x", "id": "prices", "headers": {"receipt": "r1"}}
//   {"cmd": "unsubscribe", "id": "prices"}   {"cmd": "stop"}   {"cmd": "exit"}
// Everything observed goes to stdout, one JSON object a line with "event" and "t" (performance.now(), ms; one clock
// for the clients, the proxy and the test server):
//   ready {url}, state {instance, name, attempt, delay, kind, reason, close}, connected {instance, headers},
//   message {instance, subscription, destination, body}, receipt {instance, id}, ws-close {instance, code, reason}
//   (stompjs's own callback, before the helper's), session-ended / refused
//   {instance, reason, close}, tcp-connection {n}, server-connection {instance, n}, done {cmd}, fatal {message}.

import { createServer } from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { Client } from '@stomp/stompjs';
import WebSocket, { WebSocketServer } from 'ws';
import { Connection } from '../../django_stomp_push/static/django_stomp_push/stomp-push.mjs';

const options = JSON.parse(process.argv[2]);
const PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, t: performance.now(), ...fields }) + '\n');
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// -- a TCP proxy that counts connections (what the server side sees, whatever the helper reports) ---------------

async function countingProxy(target) {
  let connections = 0;
  const proxy = net.createServer((downstream) => {
    emit('tcp-connection', { n: ++connections });
    const upstream = net.connect(Number(target.port), target.hostname);
    const close = () => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('error', close).on('close', close).pipe(upstream);
    upstream.on('error', close).on('close', close).pipe(downstream);
  });
  const port = await listen(proxy);
  return `${target.protocol}//127.0.0.1:${port}${target.pathname}`;
}

// -- a test-only STOMP server ------------------------------------------------------------------------------------

const frame = (command, headers, body = '') =>
  `${command}\n${Object.entries(headers).map(([name, value]) => `${name}:${value}\n`).join('')}\n${body}\0`;

async function testServer({ mode, retryAfter = 800, holdMs = 100 }) {
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered][0] ?? false });
  const counts = new Map();
  const server = createServer();
  server.on('upgrade', (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws) => {
      const instance = Number(new URL(request.url, 'http://x').searchParams.get('instance'));
      counts.set(instance, (counts.get(instance) ?? 0) + 1);
      emit('server-connection', { instance, n: counts.get(instance) });
      if (mode === 'drop') {
        ws.terminate();
        return;
      }
      ws.on('message', (data) => {
        const text = data.toString();
        if (!text.startsWith('CONNECT') && !text.startsWith('STOMP')) return;
        ws.send(frame('CONNECTED', { version: '1.2', 'heart-beat': '0,0', server: 'stomp-push-test' }));
        if (mode === 'later') {
          const headers = { message: 'server busy', reconnect: 'later', 'retry-after': retryAfter };
          ws.send(frame('ERROR', headers, 'too many connects in progress; retry later'));
          ws.close(1013, 'server busy');
        } else if (mode === 'hold') {
          setTimeout(() => ws.terminate(), holdMs);
        }
      });
    });
  });
  const port = await listen(server);
  return `ws://127.0.0.1:${port}/ws/stomp/`;
}

// -- the helpers under test --------------------------------------------------------------------------------------

let url = options.url;
if (options.server) url = await testServer(options.server);
else if (options.proxy) url = await countingProxy(new URL(options.url));

const helpers = [];
for (let instance = 0; instance < (options.instances ?? 1); instance += 1) {
  const target = `${url}?instance=${instance}`;
  const helper = new Connection({
    Client,
    ...(options.helper ?? {}),
    stomp: {
      webSocketFactory: () =>
        new WebSocket(target, PROTOCOLS, { headers: { Cookie: options.cookie ?? '', Origin: options.origin ?? '' } }),
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      onUnhandledReceipt: (receipt) => emit('receipt', { instance, id: receipt.headers['receipt-id'] }),
      onWebSocketClose: (event) => emit('ws-close', { instance, code: event.code, reason: event.reason }),
    },
    onStateChange: (state) => emit('state', { instance, ...state }),
    onConnect: (connected) => emit('connected', { instance, headers: { ...connected.headers } }),
    onSessionEnded: (reason, close) => emit('session-ended', { instance, reason, close }),
    onRefused: (reason, close) => emit('refused', { instance, reason, close }),
  });
  helpers.push(helper);
}

const commands = {
  subscribe({ instance = 0, destination, id, headers = {} }) {
    helpers[instance].subscribe(
      destination,
      (message) =>
        emit('message', {
          instance,
          subscription: message.headers.subscription,
          destination: message.headers.destination,
          body: message.body,
        }),
      id ? { ...headers, id } : headers,
    );
  },
  unsubscribe({ instance = 0, id }) {
    if (!helpers[instance].unsubscribe(id)) throw new Error(`no subscription ${id}`);
  },
  async stop() {
    await Promise.all(helpers.map((helper) => helper.stop()));
  },
  async exit() {
    helpers.forEach((helper) => void helper.stop());
    process.exit(0);
  },
};

const input = createInterface({ input: process.stdin });
input.on('line', async (line) => {
  if (!line.trim()) return;
  try {
    const command = JSON.parse(line);
    await commands[command.cmd](command);
    emit('done', { cmd: command.cmd });
  } catch (error) {
    emit('fatal', { message: String(error?.stack ?? error) });
  }
});
input.on('close', () => process.exit(0)); // the test went away: do not outlive it

emit('ready', { url });
helpers.forEach((helper) => helper.start());
