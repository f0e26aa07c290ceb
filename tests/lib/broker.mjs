// The stompbus broker as a child process, for the JavaScript suites
// (tests/js and tests/browser, two npm packages that import this file by
// relative path). It builds ./cmd/broker once per `node --test` run, starts
// it with the listeners it is given (127.0.0.1:0 picks free ports), reads the
// addresses from its `msg=listening transport=... addr=...` log lines, and
// stops it. Node built-ins only: nothing here resolves from node_modules.
//
// Every wait has a timeout; nothing sleeps in place of waiting for an event.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// withTimeout settles like promise, or rejects after ms naming what was awaited.
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// deferred is a promise with its resolve and reject, to settle from outside.
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

// parseLogfmt reads one slog text line: key=value, values optionally quoted.
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

// ---------------------------------------------------------------- building

const BUILD_PREFIX = 'stompbus-test-broker-';
const BUILD_TIMEOUT = 300_000;

function procStat(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the fields after the ")" that closes the command name
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
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

// runnerKey names the `node --test` run this process is a test file of: the
// runner's pid and start time. null when the parent is not a test runner
// (a file run on its own), which then builds for itself.
function runnerKey() {
  const stat = procStat(process.ppid);
  if (!stat) return null;
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  if (!cmdline.split('\0').some((a) => a === '--test' || a.startsWith('--test='))) return null;
  return `${process.ppid}-${stat[19]}`; // field 22: start time
}

function buildInto(dir) {
  const out = path.join(dir, 'broker');
  const tmpOut = path.join(dir, `broker.${process.pid}.tmp`);
  const res = spawnSync('go', ['build', '-o', tmpOut, './cmd/broker'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: BUILD_TIMEOUT,
  });
  if (res.status !== 0) {
    throw new Error(`go build ./cmd/broker failed (status ${res.status}):\n${res.stdout}\n${res.stderr}\n${res.error || ''}`);
  }
  fs.renameSync(tmpOut, out);
  return out;
}

let binary = null;

// brokerBinary returns $STOMPBUS_BROKER when set; otherwise it builds
// ./cmd/broker once per `node --test` run. Test files run as child processes
// of the runner, so the runner's pid and start time key a shared build
// directory: the first file to get there builds, the others wait (bounded)
// for its binary. Directories of runners that are gone are swept.
export function brokerBinary() {
  if (binary) return binary;
  if (process.env.STOMPBUS_BROKER) {
    binary = process.env.STOMPBUS_BROKER;
    return binary;
  }
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    const m = new RegExp(`^${BUILD_PREFIX}(\\d+)-`).exec(name);
    if (m && !pidAlive(Number(m[1]))) fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
  }
  const key = runnerKey();
  if (!key) {
    const dir = fs.mkdtempSync(path.join(tmp, `${BUILD_PREFIX}${process.pid}-`));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    binary = buildInto(dir);
    return binary;
  }
  const dir = path.join(tmp, `${BUILD_PREFIX}${key}`);
  const out = path.join(dir, 'broker');
  const failed = path.join(dir, 'failed');
  fs.mkdirSync(dir, { recursive: true });
  let owner = false;
  try {
    fs.mkdirSync(path.join(dir, 'lock'));
    owner = true;
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  }
  if (owner) {
    try {
      binary = buildInto(dir);
    } catch (e) {
      fs.writeFileSync(failed, String(e.message));
      throw e;
    }
    return binary;
  }
  const deadline = Date.now() + BUILD_TIMEOUT;
  const sab = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline) {
    if (fs.existsSync(out)) {
      binary = out;
      return binary;
    }
    if (fs.existsSync(failed)) throw new Error(fs.readFileSync(failed, 'utf8'));
    Atomics.wait(sab, 0, 0, 200); // a blocking poll of the other file's build
  }
  throw new Error(`timed out waiting for another test process to build the broker in ${dir}`);
}

// ---------------------------------------------------------------- running

const LOG_MAX_BYTES = 4 * 1024 * 1024;

// BrokerProcess runs the broker binary; start may be called again after the
// process ended (a restart), and the log spans every run.
export class BrokerProcess {
  constructor() {
    this.proc = null;
    this.exited = null; // promise of { code, signal } of the current run
    this.exit = null; // that value once known
    this.log = [];
    this.logBytes = 0;
    this.addrs = {}; // transport ("http", "stomp") -> host:port
  }

  get running() {
    return this.proc !== null && this.exit === null;
  }

  _record(line) {
    this.log.push(line);
    this.logBytes += line.length + 1;
    while (this.logBytes > LOG_MAX_BYTES && this.log.length > 1) {
      this.logBytes -= this.log.shift().length + 1;
    }
  }

  // start spawns the broker with args and resolves with this.addrs once it
  // logged a listening line for http and, unless args say `-stomp off`, stomp.
  async start(args, { timeout = 20_000 } = {}) {
    if (this.running) throw new Error('broker already running');
    const want = ['http'];
    const si = args.indexOf('-stomp');
    if (si < 0 || args[si + 1] !== 'off') want.push('stomp');
    this.addrs = {};
    this.exit = null;
    const proc = spawn(brokerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const exited = deferred();
    this.exited = exited.promise;
    const ready = deferred();
    proc.on('exit', (code, signal) => {
      this.exit = { code, signal };
      exited.resolve(this.exit);
      ready.reject(new Error(`broker exited before listening (code ${code}, signal ${signal})`));
    });
    proc.on('error', (err) => {
      if (proc.pid === undefined && this.exit === null) {
        // never started: no exit event follows
        this.exit = { code: null, signal: null, error: err };
        exited.resolve(this.exit);
      }
      ready.reject(err);
    });
    const onLine = (line) => {
      this._record(line);
      if (!line.includes('msg=listening')) return;
      const kv = parseLogfmt(line);
      if (kv.msg !== 'listening' || !kv.transport) return;
      this.addrs[kv.transport] = kv.addr;
      if (want.every((t) => this.addrs[t])) ready.resolve(this.addrs);
    };
    for (const stream of [proc.stdout, proc.stderr]) {
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
      await withTimeout(ready.promise, timeout, `broker "msg=listening" lines for ${want.join(' and ')}`);
    } catch (e) {
      await this.kill().catch(() => {});
      throw new Error(`${e.message}\n${this.dump()}`);
    }
    return this.addrs;
  }

  // stop sends SIGTERM (the broker drains: ERROR to every client, then exit)
  // and waits for the exit; past timeout it sends SIGKILL. Resolves with the
  // exit { code, signal }, or null when nothing ran.
  async stop({ timeout = 15_000 } = {}) {
    if (!this.proc) return null;
    if (this.running) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, timeout, 'broker exit after SIGTERM');
      } catch {
        await this.kill();
      }
    }
    return this.exit;
  }

  // kill ends the broker with SIGKILL: a crash, no ERROR frame to anyone.
  async kill({ timeout = 10_000 } = {}) {
    if (!this.proc) return null;
    if (this.running) {
      this.proc.kill('SIGKILL');
      await withTimeout(this.exited, timeout, 'broker exit after SIGKILL');
    }
    return this.exit;
  }

  dump(label = 'broker output', lines = 400) {
    const tail = this.log.slice(-lines);
    return `--- ${label} (last ${tail.length} of ${this.log.length} lines) ---\n${tail.join('\n')}`;
  }
}
