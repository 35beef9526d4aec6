// A @stomp/stompjs 7 client driven by the interop tests (tests/interop/stompjs.py).
//
// Usage: node stompjs_client.mjs '<json options>'
//   options: {url, cookie, origin, versions (e.g. ["1.1"]), heartbeatOutgoing, heartbeatIncoming, disconnectReceipt}
// Commands arrive on stdin, one JSON object a line:
//   {"cmd": "subscribe", "destination": "/topic/x", "id": "sub-1", "headers": {"receipt": "r1"}}
//   {"cmd": "send", "destination": "/app/echo", "body": "hi", "headers": {"receipt": "r2"}}
//   {"cmd": "disconnect"}   DISCONNECT with a receipt (client.deactivate()), then the WebSocket closes
//   {"cmd": "exit"}
// Everything the client observes goes to stdout, one JSON object a line with "event" and "t" (Date.now()):
//   connected, receipt, message, stomp-error, heartbeat-received, heartbeat-sent, heartbeat-lost,
//   ws-close {code, reason, wasClean}, ws-error, disconnected, fatal.

import { createInterface } from 'node:readline';
import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

const options = JSON.parse(process.argv[2]);

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, t: Date.now(), ...fields }) + '\n');
}

function headersOf(frame) {
  return { ...frame.headers };
}

const client = new Client({
  // ws lets a Node client send the headers a browser would: the session cookie and the page's Origin.
  webSocketFactory: () =>
    new WebSocket(options.url, ['v12.stomp', 'v11.stomp', 'v10.stomp'], {
      headers: { Cookie: options.cookie, Origin: options.origin },
    }),
  stompVersions: options.versions ? new Versions(options.versions) : Versions.default,
  reconnectDelay: 0, // observe every close; never reconnect behind the test's back
  heartbeatOutgoing: options.heartbeatOutgoing ?? 0,
  heartbeatIncoming: options.heartbeatIncoming ?? 0,
  disconnectHeaders: options.disconnectReceipt ? { receipt: options.disconnectReceipt } : {},
  debug: (line) => {
    if (line === '>>> PING') emit('heartbeat-sent');
  },
  onConnect: (frame) =>
    emit('connected', {
      headers: headersOf(frame),
      version: client.connectedVersion,
      subprotocol: client.webSocket?.protocol,
    }),
  onStompError: (frame) => emit('stomp-error', { headers: headersOf(frame), body: frame.body }),
  onUnhandledReceipt: (frame) => emit('receipt', { id: frame.headers['receipt-id'], unhandled: true }),
  onUnhandledMessage: (message) => emit('message', { headers: headersOf(message), body: message.body, unhandled: true }),
  onHeartbeatReceived: () => emit('heartbeat-received'),
  onHeartbeatLost: () => emit('heartbeat-lost'),
  onWebSocketClose: (event) => emit('ws-close', { code: event.code, reason: event.reason, wasClean: event.wasClean }),
  onWebSocketError: (event) => emit('ws-error', { message: String(event?.message ?? event) }),
  onDisconnect: (frame) => emit('disconnected', { receipt: frame.headers['receipt-id'] }),
});

function watchReceipt(headers) {
  if (headers && headers.receipt) {
    client.watchForReceipt(headers.receipt, (frame) => emit('receipt', { id: frame.headers['receipt-id'] }));
  }
}

const commands = {
  subscribe({ destination, id, headers = {} }) {
    watchReceipt(headers);
    client.subscribe(
      destination,
      (message) => emit('message', { headers: headersOf(message), body: message.body }),
      { id, ...headers },
    );
  },
  send({ destination, body = '', headers = {} }) {
    watchReceipt(headers);
    client.publish({ destination, body, headers });
  },
  async disconnect() {
    await client.deactivate();
  },
  async exit() {
    await client.deactivate({ force: true });
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

client.activate();
