// Harness for the browser tests: builds and runs the broker on loopback
// (restartable on the same port, so a loaded page can reconnect to it),
// launches Debian's Chromium through playwright-core, and drives the chat
// page. Every wait is bounded; nothing sleeps in place of waiting for an
// event or a DOM state.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BrokerProcess } from '../../lib/broker.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const OUT = path.resolve(here, '..', 'out');
export const TIMEOUT = 15_000;

// ---------------------------------------------------------------- broker

// Broker runs the binary (tests/lib/broker.mjs builds it, or
// $STOMPBUS_BROKER); the first start picks a free HTTP port, restarts reuse
// it, so a loaded page can reconnect. The data directory lasts until close.
export class Broker extends BrokerProcess {
  constructor(extraArgs = [], { node = 'n1', stompAddr = '127.0.0.1:0' } = {}) {
    super();
    this.extraArgs = extraArgs;
    this.node = node;
    this.stompListen = stompAddr;
    this.httpAddr = null;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbus-browser-'));
  }

  get url() {
    return `http://${this.httpAddr}/`;
  }

  async start() {
    const args = ['-http', this.httpAddr || '127.0.0.1:0', '-stomp', this.stompListen, '-node', this.node,
      '-data', this.dataDir, '-log-level', 'debug', ...this.extraArgs];
    const addrs = await super.start(args);
    this.httpAddr = addrs.http;
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

  async close() {
    await this.stop();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  dump() {
    return super.dump('broker log', 200);
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
