// Test harness for the stompbus end-to-end tests: starts the broker (built by
// tests/lib/broker.mjs) on ephemeral ports, and provides bounded waits,
// stompjs clients and a raw WebSocket STOMP client. Every wait in here has a
// timeout; nothing sleeps in place of synchronisation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, after } from 'node:test';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';
import { BrokerProcess, deferred, withTimeout } from '../../lib/broker.mjs';

export { WebSocket, Client, deferred, withTimeout };

export const DEFAULT_TIMEOUT = 10_000;

// ---------------------------------------------------------------- waiting

// Collects items and lets a test wait (bounded) until a predicate over them holds.
export class Collector {
  constructor(name = 'collector') {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => {
      if (w.pred(this.items)) {
        w.resolve(this.items);
        return false;
      }
      return true;
    });
  }

  until(pred, ms = DEFAULT_TIMEOUT, what = 'condition') {
    if (pred(this.items)) return Promise.resolve(this.items);
    const d = deferred();
    const w = { pred, resolve: d.resolve };
    this.waiters.push(w);
    return withTimeout(d.promise, ms, `${this.name}: ${what} (have ${this.items.length} items)`).finally(() => {
      this.waiters = this.waiters.filter((x) => x !== w);
    });
  }

  count(n, ms = DEFAULT_TIMEOUT) {
    return this.until((items) => items.length >= n, ms, `${n} items`);
  }
}

// ---------------------------------------------------------------- running

// Broker is one broker process with its own data directory, on 127.0.0.1
// ports the kernel picks.
export class Broker extends BrokerProcess {
  constructor() {
    super();
    this.dataDir = null;
  }

  get httpAddr() {
    return this.addrs.http ?? null;
  }

  get stompAddr() {
    return this.addrs.stomp ?? null;
  }

  get wsUrl() {
    return `ws://${this.httpAddr}/ws`;
  }

  get stompHostPort() {
    const i = this.stompAddr.lastIndexOf(':');
    return { host: this.stompAddr.slice(0, i), port: Number(this.stompAddr.slice(i + 1)) };
  }

  async start(extraArgs = []) {
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbus-e2e-data-'));
    const args = ['-http', '127.0.0.1:0', '-stomp', '127.0.0.1:0', '-data', this.dataDir, '-node', 'test', '-log-level', 'debug', ...extraArgs];
    await super.start(args);
    return this;
  }

  async stop() {
    const exit = await super.stop({ timeout: 12_000 });
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
    return exit;
  }
}

// ---------------------------------------------------------------- clients

// A test scope tracks every client it opens, closes them at the end and, when
// the test failed, prints the clients' frame logs and the broker's output.
export class Scope {
  constructor(broker) {
    this.broker = broker;
    this.clients = [];
    this.raws = [];
    this.seq = 0;
  }

  uid(prefix = 'id') {
    this.seq += 1;
    return `${prefix}-${process.pid}-${Date.now().toString(36)}-${this.seq}`;
  }

  // Opens a @stomp/stompjs client over WebSocket (module `ws`) and resolves
  // once CONNECTED arrives. Returns { client, connected, log, closed, errors }.
  async stomp(opts = {}, name = `client${this.clients.length + 1}`) {
    const log = [];
    const errors = [];
    const closed = deferred();
    const connected = deferred();
    const url = this.broker.wsUrl;
    const { protocols, ...clientOpts } = opts;
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, protocols || ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: (msg) => {
        log.push(`${new Date().toISOString()} ${msg}`);
        if (log.length > 2000) log.shift();
      },
      ...clientOpts,
    });
    client.onConnect = (frame) => connected.resolve(frame);
    client.onStompError = (frame) => {
      errors.push(frame);
      connected.reject(new Error(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`));
    };
    client.onWebSocketClose = (evt) => {
      closed.resolve(evt);
      connected.reject(new Error(`WebSocket closed before CONNECTED (code ${evt.code})`));
    };
    const entry = { name, client, log, errors, closed: closed.promise };
    this.clients.push(entry);
    client.activate();
    entry.connected = await withTimeout(connected.promise, DEFAULT_TIMEOUT, `${name} CONNECTED`);
    return entry;
  }

  // A raw WebSocket client speaking STOMP frames by hand.
  // wsOptions go to the `ws` WebSocket (e.g. { perMessageDeflate: false }).
  async raw(protocols = ['v12.stomp'], name = `raw${this.raws.length + 1}`, wsOptions = undefined) {
    const r = new RawStomp(this.broker.wsUrl, protocols, name, wsOptions);
    this.raws.push(r);
    await r.opened();
    return r;
  }

  async close() {
    await Promise.all(
      this.clients.map(async (c) => {
        try {
          await withTimeout(c.client.deactivate(), 5_000, `${c.name} deactivate`);
        } catch {
          try {
            c.client.forceDisconnect();
          } catch {
            /* already gone */
          }
        }
      }),
    );
    for (const r of this.raws) r.terminate();
  }

  dump() {
    const parts = [];
    for (const c of this.clients) {
      parts.push(`--- stompjs ${c.name} log (last 150) ---\n${c.log.slice(-150).join('\n')}`);
    }
    for (const r of this.raws) {
      parts.push(`--- raw ${r.name} log (last 150) ---\n${r.log.slice(-150).join('\n')}`);
    }
    parts.push(this.broker.dump());
    return parts.join('\n');
  }
}

// Starts one broker for the enclosing test file (or describe block) and
// returns a function that wraps a test body with a fresh Scope.
export function useBroker(extraArgs = []) {
  const broker = new Broker();
  before(async () => {
    await broker.start(extraArgs);
  });
  after(async () => {
    await broker.stop();
  });
  const wrap = (fn) => async (t) => {
    const scope = new Scope(broker);
    try {
      await fn(scope, t);
    } catch (e) {
      console.error(`\n##### test "${t.name}" failed: ${e && e.stack ? e.stack : e}\n${scope.dump()}\n#####`);
      throw e;
    } finally {
      await scope.close();
    }
  };
  wrap.broker = broker;
  return wrap;
}

// Subscribes and waits for the SUBSCRIBE receipt, so later messages are known
// to find the subscription. Returns { sub, messages: Collector }.
export async function subscribeSync(scope, entry, destination, headers = {}, onMessage = null) {
  const messages = new Collector(`${entry.name} ${destination}`);
  const receipt = scope.uid('sub-receipt');
  const got = deferred();
  entry.client.watchForReceipt(receipt, (f) => got.resolve(f));
  const sub = entry.client.subscribe(
    destination,
    (msg) => {
      messages.push(msg);
      if (onMessage) onMessage(msg);
    },
    { ...headers, receipt },
  );
  await withTimeout(got.promise, DEFAULT_TIMEOUT, `RECEIPT for SUBSCRIBE ${destination} (${entry.name})`);
  return { sub, messages };
}

// Publishes with a receipt and waits for it.
export async function publishSync(scope, entry, params) {
  const receipt = scope.uid('send-receipt');
  const got = deferred();
  entry.client.watchForReceipt(receipt, (f) => got.resolve(f));
  entry.client.publish({ ...params, headers: { ...(params.headers || {}), receipt } });
  return withTimeout(got.promise, DEFAULT_TIMEOUT, `RECEIPT for SEND to ${params.destination} (${entry.name})`);
}

// ---------------------------------------------------------------- raw STOMP

export function encodeFrame(command, headers = {}, body = '') {
  const bodyBuf = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  let head = `${command}\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}:${v}\n`;
  head += '\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), bodyBuf, Buffer.from([0])]);
}

// Incremental STOMP frame parser (no header unescaping: raw tests look at bytes).
export class FrameParser {
  constructor(onFrame, onHeartbeat = () => {}) {
    this.buf = Buffer.alloc(0);
    this.onFrame = onFrame;
    this.onHeartbeat = onHeartbeat;
  }

  push(data) {
    this.buf = Buffer.concat([this.buf, Buffer.from(data)]);
    for (;;) {
      // heart-beats: EOLs between frames
      let i = 0;
      while (i < this.buf.length && (this.buf[i] === 0x0a || (this.buf[i] === 0x0d && this.buf[i + 1] === 0x0a))) {
        i += this.buf[i] === 0x0d ? 2 : 1;
        this.onHeartbeat();
      }
      this.buf = this.buf.subarray(i);
      const headEnd = this.buf.indexOf('\n\n');
      const headEndCr = this.buf.indexOf('\r\n\r\n');
      let end = -1;
      let sep = 0;
      if (headEnd >= 0 && (headEndCr < 0 || headEnd < headEndCr)) {
        end = headEnd;
        sep = 2;
      } else if (headEndCr >= 0) {
        end = headEndCr;
        sep = 4;
      }
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString('utf8').split(/\r?\n/);
      const command = lines[0];
      const headers = {};
      for (const line of lines.slice(1)) {
        const c = line.indexOf(':');
        const k = line.slice(0, c);
        if (!(k in headers)) headers[k] = line.slice(c + 1);
      }
      const bodyStart = end + sep;
      let bodyEnd;
      if (headers['content-length'] !== undefined) {
        bodyEnd = bodyStart + Number(headers['content-length']);
        if (this.buf.length < bodyEnd + 1) return;
      } else {
        bodyEnd = this.buf.indexOf(0, bodyStart);
        if (bodyEnd < 0) return;
      }
      const body = this.buf.subarray(bodyStart, bodyEnd);
      this.buf = this.buf.subarray(bodyEnd + 1);
      this.onFrame({ command, headers, body: Buffer.from(body) });
    }
  }
}

export class RawStomp {
  constructor(url, protocols, name, wsOptions = undefined) {
    this.name = name;
    this.log = [];
    this.frames = new Collector(`${name} frames`);
    this.messages = []; // { data: Buffer, isBinary }
    this.heartbeats = 0;
    this.ws = protocols === null ? new WebSocket(url, wsOptions) : new WebSocket(url, protocols, wsOptions);
    this._opened = deferred();
    const closed = deferred();
    this.closed = closed.promise;
    this.closeInfo = null;
    this.parser = new FrameParser(
      (f) => {
        this.log.push(`${new Date().toISOString()} <<< ${f.command} ${JSON.stringify(f.headers)} ${f.body.length} bytes`);
        this.frames.push(f);
      },
      () => {
        this.heartbeats += 1;
      },
    );
    this.ws.on('open', () => {
      this.log.push(`${new Date().toISOString()} open, protocol=${JSON.stringify(this.ws.protocol)}`);
      this._opened.resolve();
    });
    this.ws.on('error', (err) => {
      this.log.push(`${new Date().toISOString()} error ${err.message}`);
      this._opened.reject(err);
    });
    this.ws.on('message', (data, isBinary) => {
      this.messages.push({ data: Buffer.from(data), isBinary });
      this.parser.push(data);
    });
    this.ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.log.push(`${new Date().toISOString()} close ${code} ${reason}`);
      this._opened.reject(new Error(`closed before open (${code})`));
      closed.resolve(this.closeInfo);
    });
  }

  opened() {
    return withTimeout(this._opened.promise, DEFAULT_TIMEOUT, `${this.name} WebSocket open`);
  }

  send(command, headers = {}, body = '') {
    this.log.push(`${new Date().toISOString()} >>> ${command} ${JSON.stringify(headers)}`);
    // text WebSocket message unless the body is binary, as browser clients do
    this.ws.send(encodeFrame(command, headers, body), { binary: typeof body !== 'string' });
  }

  sendRaw(data) {
    this.log.push(`${new Date().toISOString()} >>> raw ${JSON.stringify(String(data))}`);
    this.ws.send(data, { binary: false });
  }

  // Waits for the next frame with the given command (from index `from`).
  async nextFrame(command, from = 0, ms = DEFAULT_TIMEOUT) {
    const items = await this.frames.until((fs) => fs.slice(from).some((f) => f.command === command), ms, `${command} frame`);
    return items.slice(from).find((f) => f.command === command);
  }

  async connect(headers = {}) {
    this.send('CONNECT', { 'accept-version': '1.2', host: '127.0.0.1', ...headers });
    const f = await this.nextFrame('CONNECTED');
    return f;
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {
      /* gone */
    }
  }
}
