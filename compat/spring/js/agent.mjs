// A stomp.js (@stomp/stompjs over ws) client that the Java tests drive.
//
// Commands arrive on stdin, one JSON object a line; events leave on stdout,
// one JSON object a line. One agent process holds any number of clients,
// each named by the "id" the test gives it. Every frame a client sends or
// receives is reported as a "frame" event so that a failing test can print
// the exchange.
//
// commands: {op:"connect", id, url, protocols?, headers?, heartbeatIncoming?, heartbeatOutgoing?}
//           {op:"subscribe", id, sub, destination, headers?}
//           {op:"unsubscribe", id, sub, headers?}
//           {op:"send", id, destination, body?, base64?, headers?}
//           {op:"ack"|"nack", id, ackId, sub, headers?}
//           {op:"disconnect", id}
//           {op:"exit"}
// events:   {ev:"ready"} {ev:"connected", id, headers} {ev:"message", id, sub, headers, body, base64}
//           {ev:"receipt", id, receipt} {ev:"stomp-error", id, headers, body}
//           {ev:"closed", id, code, reason} {ev:"frame", id, dir, text} {ev:"fail", id, op, error}
import readline from 'node:readline';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';

const clients = new Map();

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + '\n');
}

function fail(cmd, error) {
  emit({ ev: 'fail', id: cmd.id, op: cmd.op, error: String(error && error.stack ? error.stack : error) });
}

function client(cmd) {
  const c = clients.get(cmd.id);
  if (!c) throw new Error(`no client named ${cmd.id}`);
  return c;
}

function connect(cmd) {
  const old = clients.get(cmd.id);
  if (old) old.deactivate({ force: true });
  const protocols = cmd.protocols ?? ['v12.stomp', 'v11.stomp', 'v10.stomp'];
  const c = new Client({
    webSocketFactory: () => new WebSocket(cmd.url, protocols),
    connectHeaders: cmd.headers ?? {},
    heartbeatIncoming: cmd.heartbeatIncoming ?? 10000,
    heartbeatOutgoing: cmd.heartbeatOutgoing ?? 10000,
    reconnectDelay: 0, // the test reconnects explicitly
    connectionTimeout: 10000,
    logRawCommunication: true,
    debug: (line) => {
      if (line.startsWith('>>> ')) emit({ ev: 'frame', id: cmd.id, dir: 'out', text: line.slice(4) });
      else if (line.startsWith('<<< ')) emit({ ev: 'frame', id: cmd.id, dir: 'in', text: line.slice(4) });
    },
  });
  c.onConnect = (frame) => emit({ ev: 'connected', id: cmd.id, headers: frame.headers });
  c.onStompError = (frame) => emit({ ev: 'stomp-error', id: cmd.id, headers: frame.headers, body: frame.body });
  c.onUnhandledReceipt = (frame) => emit({ ev: 'receipt', id: cmd.id, receipt: frame.headers['receipt-id'] });
  c.onUnhandledMessage = (m) => emit(messageEvent(cmd.id, null, m));
  c.onWebSocketClose = (e) => emit({ ev: 'closed', id: cmd.id, code: e.code, reason: String(e.reason ?? '') });
  c.onWebSocketError = (e) => emit({ ev: 'frame', id: cmd.id, dir: 'err', text: String(e && e.message ? e.message : e) });
  clients.set(cmd.id, c);
  c.activate();
}

// stomp.js marks every received frame as binary (it parses bytes), so the
// event carries both readings of the body: UTF-8 text and base64.
function messageEvent(id, sub, m) {
  return {
    ev: 'message',
    id,
    sub,
    headers: m.headers,
    body: m.body,
    base64: Buffer.from(m.binaryBody).toString('base64'),
  };
}

const handlers = {
  connect,
  subscribe(cmd) {
    const c = client(cmd);
    c.subscribe(cmd.destination, (m) => emit(messageEvent(cmd.id, cmd.sub, m)), { ...(cmd.headers ?? {}), id: cmd.sub });
  },
  unsubscribe(cmd) {
    client(cmd).unsubscribe(cmd.sub, cmd.headers ?? {});
  },
  send(cmd) {
    const params = { destination: cmd.destination, headers: cmd.headers ?? {} };
    if (cmd.base64 != null) params.binaryBody = new Uint8Array(Buffer.from(cmd.base64, 'base64'));
    else params.body = cmd.body ?? '';
    client(cmd).publish(params);
  },
  ack(cmd) {
    client(cmd).ack(cmd.ackId, cmd.sub, cmd.headers ?? {});
  },
  nack(cmd) {
    client(cmd).nack(cmd.ackId, cmd.sub, cmd.headers ?? {});
  },
  async disconnect(cmd) {
    const c = clients.get(cmd.id);
    clients.delete(cmd.id);
    if (c) await c.deactivate();
  },
  async exit() {
    for (const c of clients.values()) c.deactivate({ force: true });
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
    const h = handlers[cmd.op];
    if (!h) throw new Error(`unknown op ${cmd.op}`);
    await h(cmd);
  } catch (e) {
    fail(cmd ?? { op: '?' }, e);
  }
});
rl.on('close', () => process.exit(0));
emit({ ev: 'ready' });
