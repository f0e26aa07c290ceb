// The chat: rooms are topics, private messages go through user
// destinations, and who is online comes from the broker's presence feature.
//
//   room message     SEND /topic/chat.<room>               {"type":"chat","id","room","from","text","time"}
//   private message  SEND /user/<login>/queue/private      {"type":"private","id","from","to","text","time"}
//                    (and a copy to /user/<me>/queue/private, so my other tabs see it)
//   receiving        SUBSCRIBE /topic/chat.<room>, /user/queue/private, /topic/stompbus.presence
//
// Every message carries a random id. Messages sent but not yet seen coming
// back are shown as "sending…" and sent again after a reconnect; receivers
// drop ids they have already shown, so a resend never doubles a message.
import { Connection, brokerURL } from './connection.js';
import { Presence, PRESENCE_TOPIC } from './presence.js';
import { $, h, fill, clockTime, shortTime, duration, randomId } from './dom.js';

export const NAME_RE = /^[\p{L}\p{N}._-]{1,32}$/u;
export const ROOM_RE = /^[a-z0-9_-]{1,32}$/;
const MAX_TEXT = 4000;
const MAX_SHOWN = 500;
const MAX_SEEN = 5000;
const STORE_NAME = 'stompbus.name';
const STORE_ROOMS = 'stompbus.rooms';

export function roomDestination(room) {
  return `/topic/chat.${room}`;
}

export function privateDestination(user) {
  return `/user/${user}/queue/private`;
}

// colour class for a name: stable, one of six
function colourOf(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return `s${x % 6}`;
}

function store(key, value) {
  try {
    if (value === undefined) return JSON.parse(localStorage.getItem(key) ?? 'null');
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage off: the page works without it */
  }
  return null;
}

function parseTime(s) {
  const d = new Date(typeof s === 'string' ? s : NaN);
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

export class Chat {
  constructor({ onStatus } = {}) {
    this.onStatus = onStatus || (() => {});
    this.conn = null;
    this.presence = null;
    this.me = null;
    this.credentials = null; // { login, passcode } while joined, never stored
    this.convs = new Map();
    this.active = null;
    this.outbox = new Map(); // id -> { destinations, body, conv }
    this.seen = new Set();
    this.el = {
      login: $('login'),
      name: $('login-name'),
      pass: $('login-pass'),
      room: $('login-room'),
      loginError: $('login-error'),
      chat: $('chat'),
      roomList: $('room-list'),
      dmList: $('dm-list'),
      dmEmpty: $('dm-empty'),
      dmForm: $('dm-form'),
      dmName: $('dm-name'),
      joinForm: $('join-room'),
      joinName: $('join-room-name'),
      title: $('conv-title'),
      sub: $('conv-sub'),
      logs: $('logs'),
      composer: $('composer'),
      text: $('composer-text'),
      composerLabel: $('composer-label'),
      online: $('online-list'),
      onlineCount: $('online-count'),
      onlineNote: $('online-note'),
    };
    this.wire();
    const saved = store(STORE_NAME);
    if (typeof saved === 'string') this.el.name.value = saved;
  }

  wire() {
    const el = this.el;
    el.login.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submitLogin();
    });
    el.joinForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const room = el.joinName.value.trim().toLowerCase();
      if (!ROOM_RE.test(room)) {
        el.joinName.setCustomValidity('Use 1-32 lower-case letters, digits, dash or underscore.');
        el.joinName.reportValidity();
        return;
      }
      el.joinName.setCustomValidity('');
      el.joinName.value = '';
      this.openRoom(room, true);
      this.saveRooms();
    });
    el.joinName.addEventListener('input', () => el.joinName.setCustomValidity(''));
    el.dmForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const who = el.dmName.value.trim();
      if (!NAME_RE.test(who)) {
        el.dmName.setCustomValidity('Names are 1-32 letters, digits, dots, dashes or underscores.');
        el.dmName.reportValidity();
        return;
      }
      el.dmName.setCustomValidity('');
      el.dmName.value = '';
      this.openDM(who, true);
    });
    el.dmName.addEventListener('input', () => el.dmName.setCustomValidity(''));
    el.composer.addEventListener('submit', (e) => {
      e.preventDefault();
      this.sendFromComposer();
    });
    el.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendFromComposer();
      }
    });
    el.text.addEventListener('input', () => this.autoGrow());
  }

  autoGrow() {
    const t = this.el.text;
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight + 2, 160)}px`;
  }

  showLoginError(text) {
    this.el.loginError.textContent = text;
    this.el.loginError.hidden = !text;
  }

  submitLogin() {
    const name = this.el.name.value.trim();
    const room = (this.el.room.value.trim() || 'general').toLowerCase();
    this.el.name.setAttribute('aria-invalid', String(!NAME_RE.test(name)));
    this.el.room.setAttribute('aria-invalid', String(!ROOM_RE.test(room)));
    if (!NAME_RE.test(name)) {
      this.showLoginError('Choose a name of 1-32 letters, digits, dots, dashes or underscores.');
      this.el.name.focus();
      return;
    }
    if (!ROOM_RE.test(room)) {
      this.showLoginError('Room names are 1-32 lower-case letters, digits, dashes or underscores.');
      this.el.room.focus();
      return;
    }
    this.showLoginError('');
    store(STORE_NAME, name);
    this.start(name, this.el.pass.value, room);
  }

  // authHeaders gives HTTP requests the chat login (HTTP Basic), so the
  // broker's API sees the same user as the STOMP session.
  authHeaders() {
    const c = this.credentials;
    if (!c || !c.passcode) return {};
    const bytes = new TextEncoder().encode(`${c.login}:${c.passcode}`);
    return { authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` };
  }

  start(name, passcode, room) {
    this.me = name;
    this.credentials = { login: name, passcode };
    const rooms = new Set([room]);
    const saved = store(STORE_ROOMS);
    if (Array.isArray(saved)) for (const r of saved) if (ROOM_RE.test(r)) rooms.add(r);
    this.el.login.hidden = true;
    this.el.chat.hidden = false;

    const debug = new URLSearchParams(window.location.search).has('debug');
    this.conn = new Connection({ url: brokerURL(), login: name, passcode, debug });
    this.presence = new Presence({ headers: () => this.authHeaders() });
    this.presence.addEventListener('change', () => this.renderOnline());
    this.conn.addEventListener('state', (e) => this.onStatus(e.detail));
    this.conn.addEventListener('connected', (e) => this.onConnected(e.detail));
    this.conn.addEventListener('lost', (e) => this.onLost(e.detail));
    this.conn.addEventListener('notice', (e) => this.noticeAll(e.detail.text));
    this.conn.addEventListener('refused', (e) => this.onRefused(e.detail));

    this.conn.subscribe('/user/queue/private', (m) => this.onPrivate(m));
    this.conn.subscribe(PRESENCE_TOPIC, (m) => {
      try {
        this.presence.apply(JSON.parse(m.body));
      } catch {
        /* not JSON: not ours to show */
      }
    });
    for (const r of rooms) this.openRoom(r, false);
    this.select(`room:${room}`);
    this.saveRooms();
    this.renderOnline();
    this.conn.start();
  }

  async leave() {
    const conn = this.conn;
    this.conn = null;
    this.credentials = null;
    this.el.pass.value = '';
    if (this.presence) this.presence.stop();
    this.presence = null;
    for (const c of this.convs.values()) {
      c.item.remove();
      c.log.remove();
    }
    this.convs.clear();
    this.outbox.clear();
    this.seen.clear();
    this.active = null;
    this.el.chat.hidden = true;
    this.el.login.hidden = false;
    this.el.dmEmpty.hidden = false;
    if (conn) await conn.stop();
    this.el.name.focus();
  }

  onRefused({ message }) {
    void this.leave().then(() => {
      this.showLoginError(`The broker refused the login: ${message}`);
      this.onStatus({ state: 'failed', text: 'Login refused' });
    });
  }

  onConnected({ user, outage }) {
    if (user && user !== this.me) this.me = user; // the broker's name for us wins
    if (this.presence) void this.presence.start().then(() => this.ensureSelf());
    this.ensureSelf();
    if (outage) {
      // Rooms keep history: the broker replays what was sent meanwhile
      // and says when it could not (onRoomMessage). Private messages are
      // not kept.
      const took = duration(outage.to - outage.from);
      for (const c of this.convs.values()) {
        if (c.kind === 'room') continue;
        this.notice(c, `Back online after ${took} (offline ${clockTime(new Date(outage.from))}–${clockTime(new Date(outage.to))}): private messages from ${c.name} in that time were missed.`);
      }
    }
    let resent = 0;
    for (const [id, o] of this.outbox) {
      if (this.publishOut(id, o)) resent += 1;
    }
    if (outage && resent > 0) this.noticeAll(`${resent} message${resent === 1 ? '' : 's'} written while offline sent now.`);
    this.updateComposer();
  }

  ensureSelf() {
    if (this.presence && this.presence.available === false && this.me) this.presence.ensure(this.me);
  }

  onLost({ at }) {
    this.noticeAll(`Connection lost at ${clockTime(new Date(at))}; reconnecting.`);
    this.updateComposer();
  }

  // ------------------------------------------------------------ conversations

  openRoom(room, focus) {
    const key = `room:${room}`;
    let c = this.convs.get(key);
    if (!c) {
      c = this.makeConv(key, 'room', room, this.el.roomList);
      // resume: the room's recent history first, and after every
      // reconnect what was sent meanwhile (resume.js).
      c.unsubscribe = this.conn.subscribe(roomDestination(room), (m, info) => this.onRoomMessage(c, m, info), {
        onReady: () => this.setReady(c, true),
        onLost: () => this.setReady(c, false),
        resume: { from: 'first' },
      });
    }
    if (focus) this.select(key);
    return c;
  }

  openDM(user, focus) {
    if (!NAME_RE.test(user)) return null; // would not make a sane destination
    const key = `dm:${user}`;
    let c = this.convs.get(key);
    if (!c) {
      c = this.makeConv(key, 'dm', user, this.el.dmList);
      c.ready = true;
      c.button.dataset.ready = 'true';
      this.el.dmEmpty.hidden = true;
      if (this.presence && this.presence.available && !this.presence.has(user)) {
        this.notice(c, `${user} is not online now: private messages reach only people who are connected.`);
      }
    }
    if (focus) this.select(key);
    return c;
  }

  makeConv(key, kind, name, listEl) {
    const label = kind === 'room' ? `#${name}` : name;
    const badge = h('span', { class: 'badge', hidden: true, 'aria-label': 'unread' });
    const button = h('button', { type: 'button', class: 'conv', dataset: { conv: key, ready: kind === 'dm' ? 'true' : 'false' } },
      h('span', { class: 'name' }, label), badge);
    const leave = h('button', { type: 'button', class: 'leave', 'aria-label': `Close ${label}`, title: `Close ${label}` }, '×');
    const item = h('li', null, button, leave);
    const log = h('div', { class: 'log', role: 'log', 'aria-label': `Messages in ${label}`, dataset: { conv: key }, hidden: true, tabindex: '0' });
    const c = { key, kind, name, label, item, button, badge, log, unread: 0, ready: false, unsubscribe: null, byId: new Map() };
    button.addEventListener('click', () => this.select(key));
    leave.addEventListener('click', () => this.close(key));
    listEl.append(item);
    this.el.logs.append(log);
    this.convs.set(key, c);
    return c;
  }

  setReady(c, ready) {
    c.ready = ready;
    c.button.dataset.ready = String(ready);
    if (c === this.active) this.renderHead();
  }

  close(key) {
    const c = this.convs.get(key);
    if (!c) return;
    if (c.unsubscribe) c.unsubscribe();
    c.item.remove();
    c.log.remove();
    this.convs.delete(key);
    if (c.kind === 'room') this.saveRooms();
    if (![...this.convs.values()].some((x) => x.kind === 'dm')) this.el.dmEmpty.hidden = false;
    if (this.active === c) {
      this.active = null;
      const next = this.convs.keys().next();
      if (!next.done) this.select(next.value);
      else this.renderHead();
    }
  }

  saveRooms() {
    store(STORE_ROOMS, [...this.convs.values()].filter((c) => c.kind === 'room').map((c) => c.name));
  }

  select(key) {
    const c = this.convs.get(key);
    if (!c) return;
    if (this.active) {
      this.active.log.hidden = true;
      this.active.button.removeAttribute('aria-current');
    }
    this.active = c;
    c.log.hidden = false;
    c.button.setAttribute('aria-current', 'true');
    c.unread = 0;
    this.renderBadge(c);
    this.renderHead();
    c.log.scrollTop = c.log.scrollHeight;
    this.el.text.focus();
  }

  renderHead() {
    const c = this.active;
    if (!c) {
      fill(this.el.title, 'No conversation');
      fill(this.el.sub, 'Join a room on the left.');
      this.updateComposer();
      return;
    }
    fill(this.el.title, c.label);
    if (c.kind === 'room') {
      fill(this.el.sub, c.ready ? `everyone in ${c.label}` : 'joining…');
    } else {
      const online = this.presence && this.presence.has(c.name);
      const known = this.presence && this.presence.available !== false;
      fill(this.el.sub, known ? (online ? 'private · online' : 'private · offline, messages will not reach them') : 'private');
    }
    fill(this.el.composerLabel, `Message ${c.label}`);
    this.el.text.placeholder = `Message ${c.label}`;
    this.updateComposer();
  }

  updateComposer() {
    const hint = $('composer-hint');
    if (!this.active) {
      this.el.text.disabled = true;
      return;
    }
    this.el.text.disabled = false;
    fill(hint, this.conn && this.conn.connected
      ? 'Enter sends, Shift+Enter starts a new line.'
      : 'Offline: what you send now goes out when the connection is back.');
  }

  renderBadge(c) {
    c.badge.hidden = c.unread === 0;
    fill(c.badge, c.unread > 99 ? '99+' : String(c.unread));
    c.badge.setAttribute('aria-label', `${c.unread} unread`);
    let total = 0;
    for (const x of this.convs.values()) total += x.unread;
    document.title = total > 0 ? `(${total}) stompbus` : 'stompbus';
  }

  // ------------------------------------------------------------ messages

  sendFromComposer() {
    const text = this.el.text.value;
    const c = this.active;
    if (!c || text.trim() === '') return;
    if (text.length > MAX_TEXT) return;
    const id = randomId();
    const time = new Date().toISOString();
    let body;
    let destinations;
    if (c.kind === 'room') {
      body = JSON.stringify({ type: 'chat', id, room: c.name, from: this.me, text, time });
      destinations = [roomDestination(c.name)];
    } else {
      body = JSON.stringify({ type: 'private', id, from: this.me, to: c.name, text, time });
      destinations = [privateDestination(c.name)];
      if (c.name !== this.me) destinations.push(privateDestination(this.me));
    }
    const o = { destinations, body, conv: c };
    this.outbox.set(id, o);
    this.seen.add(id);
    this.show(c, { id, from: this.me, text, time, pending: true, isPrivate: c.kind === 'dm' });
    this.publishOut(id, o);
    this.el.text.value = '';
    this.autoGrow();
  }

  publishOut(id, o) {
    if (!this.conn || !this.conn.connected) {
      this.setPending(o.conv, id, 'waiting for connection');
      return false;
    }
    let ok = true;
    for (const d of o.destinations) ok = this.conn.publish(d, o.body) && ok;
    this.setPending(o.conv, id, ok ? 'sending…' : 'waiting for connection');
    return ok;
  }

  setPending(c, id, text) {
    const li = c.byId.get(id);
    if (!li) return;
    const st = li.querySelector('.state');
    if (st) fill(st, text || '');
    li.classList.toggle('pending', Boolean(text));
  }

  // acknowledge: our own message came back from the broker
  acknowledge(id) {
    const o = this.outbox.get(id);
    if (!o) return false;
    this.outbox.delete(id);
    this.setPending(o.conv, id, '');
    return true;
  }

  parse(m) {
    let v;
    try {
      v = JSON.parse(m.body);
    } catch {
      return null;
    }
    if (!v || typeof v !== 'object' || typeof v.text !== 'string' || typeof v.from !== 'string') return null;
    if (typeof v.id !== 'string' || v.id === '') v.id = m.headers['message-id'] || randomId();
    // The broker names the sender in user-id whenever it knows who sent
    // the message; that name, not the one in the body, is the author.
    const sender = m.headers['user-id'];
    if (typeof sender === 'string' && sender !== '') v.from = sender;
    return v;
  }

  remember(id) {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value);
    return true;
  }

  onRoomMessage(c, m, info) {
    if (info && info.gap) {
      this.notice(c, `Some messages sent to #${c.name} could not be recovered: the room keeps only its most recent ones.`);
    }
    const v = this.parse(m);
    if (!v) return;
    if (this.acknowledge(v.id)) return;
    if (!this.remember(v.id)) return;
    this.show(c, { id: v.id, from: v.from, text: v.text, time: v.time });
  }

  onPrivate(m) {
    const v = this.parse(m);
    if (!v) return;
    if (this.acknowledge(v.id)) return;
    if (!this.remember(v.id)) return;
    const peer = v.from === this.me && typeof v.to === 'string' && v.to !== '' ? v.to : v.from;
    if (!NAME_RE.test(peer)) return;
    const c = this.openDM(peer, false);
    if (!c) return;
    this.show(c, { id: v.id, from: v.from, text: v.text, time: v.time, isPrivate: true });
  }

  show(c, { id, from, text, time, pending = false, isPrivate = false }) {
    const when = parseTime(time);
    const mine = from === this.me;
    const li = h('article', { class: `msg${mine ? ' mine' : ''}${pending ? ' pending' : ''}${isPrivate ? ' private' : ''}`, dataset: { id, author: from } },
      h('div', { class: 'head' },
        h('span', { class: `author ${colourOf(from)}` }, from),
        h('time', { datetime: when.toISOString(), title: when.toLocaleString() }, shortTime(when)),
        h('span', { class: 'state' }, pending ? 'sending…' : '')),
      h('p', { class: 'text' }, text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text));
    this.append(c, li);
    c.byId.set(id, li);
    if (c !== this.active) {
      c.unread += 1;
      this.renderBadge(c);
    }
  }

  notice(c, text) {
    const now = new Date();
    this.append(c, h('p', { class: 'notice' }, h('time', { datetime: now.toISOString() }, clockTime(now)), text));
  }

  noticeAll(text) {
    for (const c of this.convs.values()) this.notice(c, text);
  }

  append(c, li) {
    const log = c.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.childElementCount > MAX_SHOWN) {
      const first = log.firstElementChild;
      if (first.dataset.id) c.byId.delete(first.dataset.id);
      first.remove();
    }
    if (atBottom || li.classList.contains('mine')) log.scrollTop = log.scrollHeight;
  }

  // ------------------------------------------------------------ online list

  renderOnline() {
    const p = this.presence;
    if (!p) return;
    const users = p.list();
    fill(this.el.onlineCount, String(users.length));
    this.el.onlineCount.setAttribute('aria-label', `${users.length} online`);
    const items = users.map((u) => {
      const self = u.user === this.me;
      const meta = [];
      if (u.sessions > 1) meta.push(`${u.sessions} tabs`);
      if (u.nodes.length) meta.push(u.nodes.join(', '));
      const b = h(self ? 'span' : 'button', self ? { class: 'self' } : { type: 'button', title: `Write to ${u.user} privately` },
        h('span', { class: 'presence', 'aria-hidden': 'true' }),
        h('span', { class: `author ${colourOf(u.user)}` }, u.user),
        self ? h('span', { class: 'muted' }, '(you)') : null,
        meta.length ? h('span', { class: 'meta' }, meta.join(' · ')) : null);
      if (!self) b.addEventListener('click', () => this.openDM(u.user, true));
      return h('li', { dataset: { user: u.user } }, b);
    });
    fill(this.el.online, items);
    const note = this.el.onlineNote;
    if (p.available === false) {
      fill(note, 'This broker has no presence endpoint: the list shows who joined since you did.');
      note.hidden = false;
    } else {
      note.hidden = true;
    }
    if (this.active && this.active.kind === 'dm') this.renderHead();
  }
}
