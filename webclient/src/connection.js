// Connection keeps one STOMP session to the broker alive for the page, on
// top of @stomp/stompjs's Client:
//
//   - subscriptions are registered once with subscribe() and made again on
//     every (re)connect, each with a receipt so the caller learns when the
//     broker has it (onReady);
//   - after a drop it reconnects with capped exponential backoff and jitter;
//     when the broker said how long to wait (ERROR frame with a `retry-after`
//     header, in seconds, sent while a node drains) it waits exactly that;
//   - an ERROR before CONNECTED that carries no retry-after (a refused login)
//     stops the loop: retrying the same credentials cannot help;
//   - listeners hear 'state' (what to show the user) and 'connected' (with
//     the outage that just ended, if any).
//
// stompjs calls beforeConnect before every attempt and awaits it: that is
// where the wait happens, so stompjs's own reconnectDelay is just a floor.
import { Client } from '@stomp/stompjs';
import { StreamPosition } from './resume.js';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 15000;

export class Connection extends EventTarget {
  constructor({ url, login, passcode, debug = false }) {
    super();
    this.url = url;
    this.login = login;
    this.passcode = passcode;
    this.user = login;
    this.state = 'idle';
    this.subs = new Map();
    this.nextSubKey = 1;
    this.failures = 0; // consecutive attempts that did not reach CONNECTED
    this.retryAfterMs = null; // set by an ERROR frame, used by the next wait
    this.connectedAt = null;
    this.lostAt = null;
    this.wake = null;
    this.stopped = false;
    this.receiptSeq = 0;

    const connectHeaders = { login };
    if (passcode) connectHeaders.passcode = passcode;
    this.client = new Client({
      brokerURL: url,
      connectHeaders,
      reconnectDelay: 200,
      connectionTimeout: 10000,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      debug: debug ? (m) => console.debug('[stomp]', m) : () => {},
    });
    this.client.beforeConnect = () => this.waitBeforeAttempt();
    this.client.onConnect = (frame) => this.handleConnected(frame);
    this.client.onStompError = (frame) => this.handleError(frame);
    this.client.onWebSocketClose = (evt) => this.handleClose(evt);
  }

  start() {
    this.stopped = false;
    this.client.activate();
  }

  async stop() {
    this.stopped = true;
    if (this.wake) this.wake();
    this.setState('idle', 'Chat: not joined');
    await this.client.deactivate();
  }

  // reconnectNow cuts a pending wait short.
  reconnectNow() {
    this.retryAfterMs = null;
    if (this.wake) this.wake();
  }

  get connected() {
    return this.client.connected;
  }

  setState(state, text, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, text, ...extra } }));
  }

  async waitBeforeAttempt() {
    if (this.stopped) return;
    let wait = 0;
    let why = '';
    if (this.retryAfterMs !== null) {
      wait = this.retryAfterMs;
      why = 'the broker asked to wait';
      this.retryAfterMs = null;
    } else if (this.failures > 0) {
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.failures - 1));
      wait = Math.round(base * (0.5 + Math.random() / 2));
    }
    if (wait > 0) {
      const until = Date.now() + wait;
      this.setState('waiting', `Reconnecting in ${Math.ceil(wait / 1000)} s${why ? ` (${why})` : ''}`, { until, waitMs: wait });
      await new Promise((resolve) => {
        const t = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    if (this.stopped) return;
    this.failures += 1;
    this.setState('connecting', this.lostAt ? 'Reconnecting…' : 'Connecting…');
  }

  handleConnected(frame) {
    this.failures = 0;
    this.retryAfterMs = null;
    this.user = frame.headers['user-name'] || this.login;
    this.connectedAt = Date.now();
    const outage = this.lostAt ? { from: this.lostAt, to: this.connectedAt } : null;
    this.lostAt = null;
    for (const s of this.subs.values()) this.doSubscribe(s);
    this.setState('connected', `Connected as ${this.user}`, { user: this.user, node: frame.headers.server || '' });
    this.dispatchEvent(new CustomEvent('connected', { detail: { user: this.user, outage, headers: frame.headers } }));
  }

  handleError(frame) {
    const msg = frame.headers.message || 'broker error';
    const ra = Number.parseInt(frame.headers['retry-after'] ?? '', 10);
    if (Number.isFinite(ra) && ra >= 0) {
      this.retryAfterMs = ra * 1000;
      this.dispatchEvent(new CustomEvent('notice', { detail: { text: `Broker: ${msg}. Reconnecting in ${ra} s as it asked.`, retryAfter: ra } }));
      return;
    }
    if (!this.client.connected && this.connectedAt === null) {
      // refused before we ever got in: bad credentials or a policy; stop
      this.stopped = true;
      this.setState('failed', `Refused: ${msg}`, { message: msg });
      void this.client.deactivate();
      this.dispatchEvent(new CustomEvent('refused', { detail: { message: msg } }));
      return;
    }
    this.dispatchEvent(new CustomEvent('notice', { detail: { text: `Broker error: ${msg}` } }));
  }

  handleClose() {
    for (const s of this.subs.values()) {
      s.stompSub = null;
      s.ready = false;
      if (s.onLost) s.onLost();
    }
    if (this.connectedAt !== null && this.lostAt === null) {
      this.lostAt = Date.now();
      this.dispatchEvent(new CustomEvent('lost', { detail: { at: this.lostAt } }));
    }
    if (!this.stopped && this.state !== 'waiting') {
      this.setState('connecting', 'Connection lost, reconnecting…');
    }
  }

  // subscribe registers a subscription kept across reconnects. onMessage
  // gets stompjs IMessage values (and, with resume, the { gap, offset,
  // epoch } of resume.js); onReady runs each time the broker has confirmed
  // it (receipt, with x-stream-recovered); onLost when the connection under
  // it dropped. resume ({ from: 'first' | 'last' | 'next' }) resubscribes
  // after each reconnect from the message after the last one received, so
  // nothing sent meanwhile is missed on a topic that keeps history.
  // Returns a function that removes it.
  subscribe(destination, onMessage, { onReady, onLost, headers = {}, resume = null } = {}) {
    const key = this.nextSubKey++;
    const stream = resume ? new StreamPosition(destination, resume) : null;
    const s = { key, destination, onMessage, onReady, onLost, headers, stream, stompSub: null, ready: false };
    this.subs.set(key, s);
    if (this.client.connected) this.doSubscribe(s);
    return () => {
      this.subs.delete(key);
      if (s.stompSub && this.client.connected) {
        try {
          s.stompSub.unsubscribe();
        } catch {
          /* connection went away meanwhile */
        }
      }
      s.stompSub = null;
    };
  }

  doSubscribe(s) {
    this.receiptSeq += 1;
    const receipt = `sub-${s.key}-${this.receiptSeq}`;
    this.client.watchForReceipt(receipt, (frame) => {
      if (this.subs.get(s.key) !== s) return;
      s.ready = true;
      if (s.onReady) s.onReady(frame.headers['x-stream-recovered'] !== 'false');
    });
    if (!s.stream) {
      s.stompSub = this.client.subscribe(s.destination, s.onMessage, { ...s.headers, receipt });
      return;
    }
    const onMessage = (m) => {
      const info = s.stream.accept(m);
      if (info) s.onMessage(m, info);
    };
    s.stompSub = this.client.subscribe(s.destination, onMessage, { ...s.headers, ...s.stream.headers(), receipt });
  }

  // publish sends when connected and reports whether it did.
  publish(destination, body, headers = {}) {
    if (!this.client.connected) return false;
    try {
      this.client.publish({ destination, body, headers: { 'content-type': 'application/json', ...headers } });
      return true;
    } catch {
      return false;
    }
  }
}

// brokerURL is the WebSocket endpoint of the broker that served the page.
export function brokerURL(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}
