// Harness for the browser tests: builds and runs the broker on loopback
// (restartable on the same port, so a loaded page can reconnect to it),
// launches Debian's Chromium through playwright-core, and drives the chat
// page. Every wait is bounded; nothing sleeps in place of waiting for an
// event or a DOM state.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..', '..');
export const OUT = path.resolve(here, '..', 'out');
export const TIMEOUT = 15_000;

export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- broker

let built = null;

// brokerBinary returns STOMPBUS_BROKER if set, else builds ./cmd/broker
// into out/ (go's build cache makes repeat builds cheap).
export function brokerBinary() {
  if (built) return built;
  if (process.env.STOMPBUS_BROKER) {
    built = process.env.STOMPBUS_BROKER;
    return built;
  }
  fs.mkdirSync(OUT, { recursive: true });
  const pkg = './cmd/broker';
  const out = path.join(OUT, `broker-${process.pid}`);
  const res = spawnSync('go', ['build', '-o', out, pkg], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (res.status !== 0) throw new Error(`go build ${pkg} failed:\n${res.stdout}${res.stderr}${res.error || ''}`);
  process.on('exit', () => fs.rmSync(out, { force: true }));
  built = out;
  return built;
}

function parseLogfmt(line) {
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

// Broker runs the binary; the first start picks a free HTTP port, restarts
// reuse it.
export class Broker {
  constructor(extraArgs = [], { node = 'n1', stompAddr = '127.0.0.1:0' } = {}) {
    this.extraArgs = extraArgs;
    this.node = node;
    this.stompAddr = stompAddr;
    this.httpAddr = null;
    this.proc = null;
    this.log = [];
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbus-browser-'));
  }

  get url() {
    return `http://${this.httpAddr}/`;
  }

  async start() {
    const bin = brokerBinary();
    const args = ['-http', this.httpAddr || '127.0.0.1:0', '-stomp', this.stompAddr, '-node', this.node,
      '-data', this.dataDir, '-log-level', 'debug', ...this.extraArgs];
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const listening = new Promise((resolve, reject) => {
      proc.on('error', reject);
      proc.on('exit', (code) => reject(new Error(`broker exited (code ${code}) before listening`)));
      let buf = '';
      const onData = (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.log.push(line);
          if (this.log.length > 3000) this.log.shift();
          const kv = parseLogfmt(line);
          if (kv.msg === 'listening' && kv.transport === 'http') resolve(kv.addr);
        }
      };
      proc.stdout.setEncoding('utf8').on('data', onData);
      proc.stderr.setEncoding('utf8').on('data', onData);
    });
    try {
      this.httpAddr = await withTimeout(listening, 20_000, 'broker "msg=listening transport=http"');
    } catch (e) {
      proc.kill('SIGKILL');
      throw new Error(`${e.message}\n${this.dump()}`);
    }
    return this;
  }

  // ready waits until GET /readyz answers 200 (in a cluster: the node can
  // deliver cluster-wide).
  async ready(timeout = 30_000) {
    await until(async () => {
      try {
        const res = await fetch(`${this.url}readyz`);
        return res.status === 200;
      } catch {
        return false;
      }
    }, `${this.node} /readyz 200`, timeout, 200);
    return this;
  }

  // stop sends SIGTERM (the broker drains: ERROR with retry-after to every
  // client) and waits for the exit.
  async stop() {
    if (!this.proc) return null;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      try {
        return await withTimeout(this.exited, 15_000, 'broker exit after SIGTERM');
      } catch {
        proc.kill('SIGKILL');
      }
    }
    return this.exited;
  }

  // kill ends the broker with SIGKILL: a crash, no ERROR frame to anyone.
  async kill() {
    if (!this.proc) return null;
    const proc = this.proc;
    this.proc = null;
    proc.kill('SIGKILL');
    return withTimeout(this.exited, 10_000, 'broker exit after SIGKILL');
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  dump() {
    return `--- broker log (last 200 lines) ---\n${this.log.slice(-200).join('\n')}`;
  }
}

// freePort asks the kernel for a free loopback TCP port (for listeners
// that must be named before they start, such as cluster routes).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- browser

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// launchBrowser starts Debian's Chromium headless. playwright-core gives
// each launch a fresh temporary profile (user-data-dir) and removes it on
// close; each newContext() inside is a separate cookie/storage jar.
export function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

// A ChatPage is one user in their own browser context.
export class ChatPage {
  constructor(browser, broker, name) {
    this.browser = browser;
    this.broker = broker;
    this.name = name;
    this.dialogs = [];
    this.errors = [];
    this.console = [];
  }

  // load opens the page without joining.
  async load({ viewport = { width: 1280, height: 800 } } = {}) {
    this.context = await this.browser.newContext({ viewport });
    this.page = await this.context.newPage();
    this.page.setDefaultTimeout(TIMEOUT);
    this.page.on('dialog', (d) => {
      this.dialogs.push(`${d.type()}: ${d.message()}`);
      void d.dismiss().catch(() => {});
    });
    this.page.on('pageerror', (e) => this.errors.push(String(e)));
    this.page.on('console', (m) => {
      this.console.push(`${m.type()}: ${m.text()} (${m.location().url})`);
      if (this.console.length > 500) this.console.shift();
    });
    await this.page.goto(this.broker.url);
    return this;
  }

  // open loads the page and joins room as this.name.
  async open({ room = 'general', viewport } = {}) {
    await this.load({ viewport });
    await this.page.getByLabel('Your name').fill(this.name);
    await this.page.getByLabel('Room', { exact: true }).fill(room);
    await this.page.getByRole('button', { name: 'Join' }).click();
    await this.waitConnected();
    await this.waitRoomReady(room);
    return this;
  }

  async waitConnected(timeout = TIMEOUT) {
    await this.page.locator('#status[data-state="connected"]').waitFor({ timeout });
  }

  async waitRoomReady(room, timeout = TIMEOUT) {
    await this.page.locator(`.conv[data-conv="room:${room}"][data-ready="true"]`).waitFor({ timeout });
  }

  state() {
    return this.page.locator('#status').getAttribute('data-state');
  }

  // send types text into the composer and presses Enter.
  async send(text) {
    const box = this.page.locator('#composer-text');
    await box.fill(text);
    await box.press('Enter');
  }

  log(conv) {
    return this.page.locator(`.log[data-conv="${conv}"]`);
  }

  // message finds a shown message by its exact text in one conversation.
  message(conv, text) {
    return this.log(conv).locator('.msg').filter({ has: this.page.locator('.text', { hasText: text }) });
  }

  async waitMessage(conv, text, timeout = TIMEOUT) {
    const m = this.message(conv, text).last();
    await m.waitFor({ state: 'attached', timeout });
    return m;
  }

  async openPrivate(user) {
    await this.page.getByLabel('Write privately to').fill(user);
    await this.page.getByLabel('Write privately to').press('Enter');
    await this.page.locator(`.conv[data-conv="dm:${user}"][aria-current="true"]`).waitFor();
  }

  online() {
    return this.page.locator('#online-list li').evaluateAll((lis) => lis.map((li) => li.dataset.user));
  }

  async close() {
    if (this.context) await this.context.close().catch(() => {});
    this.context = null;
  }

  // consoleErrors: what the page logged as errors, less the network
  // failures the browser logs for answers the page handles itself (a 404
  // from an API the broker does not serve, a refused WebSocket while the
  // broker restarts).
  consoleErrors() {
    return this.console.filter((l) => l.startsWith('error') && !/Failed to load resource|WebSocket connection to/.test(l));
  }

  dump() {
    return `--- ${this.name}: dialogs ${JSON.stringify(this.dialogs)} errors ${JSON.stringify(this.errors)}\n${this.console.slice(-60).join('\n')}`;
  }
}

// poll re-evaluates fn until it returns a truthy value, bounded; for
// state outside the DOM (a value the page does not render as an element).
export async function until(fn, what, timeout = TIMEOUT, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

export function screenshotPath(name) {
  fs.mkdirSync(OUT, { recursive: true });
  return path.join(OUT, name);
}
