// stompbus-resume: topic subscriptions that survive reconnects without
// losing messages, on top of @stomp/stompjs's Client.
//
// A stompbus topic that keeps history (-topic-history) numbers its messages:
// every MESSAGE carries x-stream-offset (one more than the previous message
// of that destination) and x-stream-epoch (changes only when the history
// was lost). A SUBSCRIBE with x-stream-offset: offset=<n> (and the epoch)
// gets message n and everything after it from history, then live messages,
// with no gap and no duplicate. This module does the bookkeeping:
//
//   import { Client } from '@stomp/stompjs';
//   import { ResumableSubscriptions } from './resume.js';
//
//   const client = new Client({ brokerURL: 'wss://host/ws' });
//   const subs = new ResumableSubscriptions(client);
//   const sub = subs.subscribe('/topic/chat.lobby', (message, info) => {
//     if (info.gap) showNotice('some messages could not be recovered');
//     show(message.body);
//   }, { from: 'last' });
//   client.activate();
//   ...
//   sub.unsubscribe();
//
// It remembers, per subscription, the position of the last message handed
// to the callback and, on every (re)connect, subscribes again from the
// message after it. The first subscription starts where `from` says: 'next'
// (live only, the default), 'first' (all the history kept), 'last' (the
// newest kept message, then live), or { timestamp: <unix seconds> }.
// info.gap is true on the first message after the broker said history no
// longer reached back (x-stream-gap:true); onReceipt(recovered) reports the
// broker's x-stream-recovered after each (re)subscribe.
//
// Wildcard subscriptions resume by time: positions are kept per
// destination and messages already seen are dropped.
//
// It chains the client's onConnect and onWebSocketClose: set those before
// constructing, or use the `connected` / `lost` options here.

let receiptSeq = 0;

export class ResumableSubscriptions {
  constructor(client, { connected, lost } = {}) {
    this.client = client;
    this.subs = new Set();
    const prevConnect = client.onConnect;
    const prevClose = client.onWebSocketClose;
    client.onConnect = (frame) => {
      if (prevConnect) prevConnect(frame);
      for (const s of this.subs) s.open();
      if (connected) connected(frame);
    };
    client.onWebSocketClose = (evt) => {
      if (prevClose) prevClose(evt);
      for (const s of this.subs) s.stompSub = null;
      if (lost) lost(evt);
    };
  }

  // subscribe starts a resumable subscription; see the module comment.
  // options: from, headers (more SUBSCRIBE headers), onReceipt(recovered).
  subscribe(destination, onMessage, options = {}) {
    const s = new Resumable(this, destination, onMessage, options);
    this.subs.add(s);
    if (this.client.connected) s.open();
    return s;
  }
}

const isPattern = (d) => /(^|[/.])[*#>]$|[/.][*#>][/.]/.test(d);

// StreamPosition is the bookkeeping of one subscription, for code that
// manages its own stompjs subscriptions (the demo page's Connection does):
// headers() gives the x-stream-* headers of the next SUBSCRIBE, accept(m)
// records a MESSAGE and returns { gap, offset, epoch }, or null for a
// message already handed on (a wildcard resume by time may repeat some).
export class StreamPosition {
  constructor(destination, { from = 'next' } = {}) {
    this.destination = destination;
    this.from = from;
    this.wildcard = isPattern(destination);
    // positions: destination -> { offset, epoch } of the last message handed on
    this.positions = new Map();
    this.lastTime = null; // unix seconds of the last message handed on (wildcards)
  }

  // last returns the last position handed on of a literal destination:
  // { offset, epoch } or null.
  get last() {
    return this.positions.get(this.destination) ?? null;
  }

  headers() {
    if (!this.wildcard) {
      const p = this.last;
      if (p) return { 'x-stream-offset': `offset=${p.offset + 1}`, 'x-stream-epoch': p.epoch };
    } else if (this.lastTime !== null) {
      return { 'x-stream-offset': `timestamp=${this.lastTime}` };
    }
    const f = this.from;
    if (f && typeof f === 'object' && 'timestamp' in f) return { 'x-stream-offset': `timestamp=${Math.floor(f.timestamp)}` };
    if (f === 'first' || f === 'last') return { 'x-stream-offset': f };
    return {};
  }

  accept(message) {
    const h = message.headers;
    const offset = Number.parseInt(h['x-stream-offset'] ?? '', 10);
    const gap = h['x-stream-gap'] === 'true';
    const epoch = h['x-stream-epoch'] ?? null;
    if (!Number.isFinite(offset)) return { gap, offset: null, epoch };
    const key = this.wildcard ? (h.destination ?? this.destination) : this.destination;
    const prev = this.positions.get(key);
    if (!gap && prev && prev.epoch === epoch && offset <= prev.offset) return null;
    this.positions.set(key, { offset, epoch });
    this.lastTime = Math.floor(Date.now() / 1000) - 1;
    return { gap, offset, epoch };
  }
}

// Resumable is one subscription of ResumableSubscriptions.
export class Resumable {
  constructor(owner, destination, onMessage, { from = 'next', headers = {}, onReceipt } = {}) {
    this.owner = owner;
    this.destination = destination;
    this.onMessage = onMessage;
    this.extraHeaders = headers;
    this.onReceipt = onReceipt;
    this.stream = new StreamPosition(destination, { from });
    this.stompSub = null;
    this.closed = false;
  }

  // position is the last position handed on (literal destinations):
  // { offset, epoch } or null.
  get position() {
    return this.stream.last;
  }

  open() {
    if (this.closed) return;
    const client = this.owner.client;
    const headers = { ...this.extraHeaders, ...this.stream.headers() };
    if (this.onReceipt) {
      receiptSeq += 1;
      const receipt = `resume-${receiptSeq}`;
      headers.receipt = receipt;
      client.watchForReceipt(receipt, (frame) => {
        if (!this.closed) this.onReceipt(frame.headers['x-stream-recovered'] !== 'false', frame);
      });
    }
    this.stompSub = client.subscribe(this.destination, (m) => {
      const info = this.stream.accept(m);
      if (info) this.onMessage(m, info);
    }, headers);
  }

  unsubscribe() {
    this.closed = true;
    this.owner.subs.delete(this);
    if (this.stompSub && this.owner.client.connected) {
      try {
        this.stompSub.unsubscribe();
      } catch {
        /* the connection went away meanwhile */
      }
    }
    this.stompSub = null;
  }
}
