// Test harness for the stompbus end-to-end tests: builds the broker, starts it
// on ephemeral ports, and provides bounded waits, stompjs clients and a raw
// WebSocket STOMP client. Every wait in here has a timeout; nothing sleeps in
// place of synchronisation.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import WebSocket from 'ws';
import { Client } from '@stomp/stompjs';

export { WebSocket, Client };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');

export const DEFAULT_TIMEOUT = 10_000;

// ---------------------------------------------------------------- waiting

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A deferred promise: resolve/reject from outside.
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

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

// ---------------------------------------------------------------- building

function procStartTime(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 22 (starttime), counted after the ")" that closes the command name
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return null;
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function buildInto(dir) {
  const out = path.join(dir, 'broker');
  const tmpOut = path.join(dir, `broker.${process.pid}.tmp`);
  const res = spawnSync('go', ['build', '-o', tmpOut, './cmd/broker'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (res.status !== 0) {
    throw new Error(`go build ./cmd/broker failed (status ${res.status}):\n${res.stdout}\n${res.stderr}\n${res.error || ''}`);
  }
  fs.renameSync(tmpOut, out);
  return out;
}

let brokerBinary = null;

// Builds the broker once per `node --test` run. Test files run as child
// processes of the runner, so the runner's pid (our ppid) plus its start time
// keys a shared build directory; the first file to get there builds, the others
// reuse the binary. STOMPBUS_BROKER=/path/to/broker skips the build.
export function brokerBinaryPath() {
  if (brokerBinary) return brokerBinary;
  if (process.env.STOMPBUS_BROKER) {
    brokerBinary = process.env.STOMPBUS_BROKER;
    return brokerBinary;
  }
  const tmp = os.tmpdir();
  // sweep build dirs left by earlier runs whose runner is gone
  for (const name of fs.readdirSync(tmp)) {
    const m = /^stompbus-e2e-js-(\d+)-/.exec(name);
    if (m && !pidAlive(Number(m[1]))) {
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    }
  }
  const start = procStartTime(process.ppid);
  if (!start) {
    const dir = fs.mkdtempSync(path.join(tmp, `stompbus-e2e-js-${process.pid}-`));
    brokerBinary = buildInto(dir);
    return brokerBinary;
  }
  const dir = path.join(tmp, `stompbus-e2e-js-${process.ppid}-${start}`);
  const lock = path.join(dir, 'lock');
  const out = path.join(dir, 'broker');
  const failed = path.join(dir, 'failed');
  fs.mkdirSync(dir, { recursive: true });
  let owner = false;
  try {
    fs.mkdirSync(lock);
    owner = true;
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  }
  if (owner) {
    try {
      brokerBinary = buildInto(dir);
    } catch (e) {
      fs.writeFileSync(failed, String(e.message));
      throw e;
    }
    return brokerBinary;
  }
  // another test file of this run is building: wait (bounded) for its result
  const deadline = Date.now() + 300_000;
  const sab = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline) {
    if (fs.existsSync(out)) {
      brokerBinary = out;
      return brokerBinary;
    }
    if (fs.existsSync(failed)) throw new Error(fs.readFileSync(failed, 'utf8'));
    Atomics.wait(sab, 0, 0, 200);
  }
  throw new Error(`timed out waiting for another test process to build the broker in ${dir}`);
}

// ---------------------------------------------------------------- running

// Parses one slog text-format line (key=value, values optionally quoted).
export function parseLogfmt(line) {
  const out = {};
  const re = /([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let m;
  while ((m = re.exec(line)) !== null) {
    let v = m[2];
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v);
      } catch {
        v = v.slice(1, -1);
      }
    }
    out[m[1]] = v;
  }
  return out;
}

export class Broker {
  constructor() {
    this.proc = null;
    this.log = [];
    this.logBytes = 0;
    this.httpAddr = null;
    this.stompAddr = null;
    this.dataDir = null;
    this.exit = null;
  }

  get wsUrl() {
    return `ws://${this.httpAddr}/ws`;
  }

  get stompHostPort() {
    const i = this.stompAddr.lastIndexOf(':');
    return { host: this.stompAddr.slice(0, i), port: Number(this.stompAddr.slice(i + 1)) };
  }

  _record(line) {
    this.log.push(line);
    this.logBytes += line.length + 1;
    while (this.logBytes > 4 * 1024 * 1024 && this.log.length > 1) {
      this.logBytes -= this.log.shift().length + 1;
    }
  }

  async start(extraArgs = []) {
    const bin = brokerBinaryPath();
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbus-e2e-data-'));
    const args = ['-http', '127.0.0.1:0', '-stomp', '127.0.0.1:0', '-data', this.dataDir, '-node', 'test', '-log-level', 'debug', ...extraArgs];
    this.proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = deferred();
    this.exited = exited.promise;
    const ready = deferred();
    this.proc.on('exit', (code, signal) => {
      this.exit = { code, signal };
      exited.resolve(this.exit);
      ready.reject(new Error(`broker exited before listening (code ${code}, signal ${signal})`));
    });
    this.proc.on('error', (err) => ready.reject(err));
    const onLine = (line) => {
      this._record(line);
      if (!line.includes('msg=listening')) return;
      const kv = parseLogfmt(line);
      if (kv.msg !== 'listening') return;
      if (kv.transport === 'http') this.httpAddr = kv.addr;
      if (kv.transport === 'stomp') this.stompAddr = kv.addr;
      if (this.httpAddr && this.stompAddr) ready.resolve();
    };
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    try {
      await withTimeout(ready.promise, 20_000, 'broker "msg=listening" lines for http and stomp');
    } catch (e) {
      await this.stop();
      throw new Error(`${e.message}\n--- broker output ---\n${this.log.join('\n')}`);
    }
    return this;
  }

  async stop() {
    if (!this.proc) return this.exit;
    if (this.exit === null) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, 12_000, 'broker exit after SIGTERM');
      } catch {
        this.proc.kill('SIGKILL');
        await withTimeout(this.exited, 5_000, 'broker exit after SIGKILL').catch(() => {});
      }
    }
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
    return this.exit;
  }

  dump(label = 'broker output') {
    const tail = this.log.slice(-400);
    return `--- ${label} (last ${tail.length} of ${this.log.length} lines) ---\n${tail.join('\n')}`;
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
  async raw(protocols = ['v12.stomp'], name = `raw${this.raws.length + 1}`) {
    const r = new RawStomp(this.broker.wsUrl, protocols, name);
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
  constructor(url, protocols, name) {
    this.name = name;
    this.log = [];
    this.frames = new Collector(`${name} frames`);
    this.messages = []; // { data: Buffer, isBinary }
    this.heartbeats = 0;
    this.ws = protocols === null ? new WebSocket(url) : new WebSocket(url, protocols);
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
