// Presence: who is online, from the broker's presence feature.
//
//   GET /api/v1/presence          {"users":[{"user":"alice","sessions":2,"nodes":["n1"]}]}
//   /topic/stompbus.presence      {"type":"join"|"leave","user":"alice","node":"n1","time":"RFC3339"}
//
// Events say when a user came online (first session anywhere) or went
// offline (last session gone). They are applied at once and a snapshot
// (with session counts and nodes) is fetched
// shortly after each burst of events and on every (re)connect, so the list
// converges on the broker's view even when an event and a snapshot cross.
// When the broker has no presence endpoint the list is built from events
// alone and `complete` is false.
export const PRESENCE_TOPIC = '/topic/stompbus.presence';
export const PRESENCE_URL = '/api/v1/presence';

const RECONCILE_DELAY_MS = 400;
const RECONCILE_EVERY_MS = 30000;

function listOf(users) {
  return [...users.entries()]
    .map(([user, v]) => ({ user, sessions: v.sessions, nodes: [...v.nodes].sort() }))
    .sort((a, b) => a.user.localeCompare(b.user));
}

export class Presence extends EventTarget {
  constructor({ fetchImpl = (...a) => fetch(...a), headers = () => ({}) } = {}) {
    super();
    this.fetch = fetchImpl;
    this.headers = headers;
    this.users = new Map(); // user -> { sessions, nodes: Set }
    this.complete = false; // true once a snapshot came from the broker
    this.available = null; // null: unknown yet; false: broker has no endpoint
    this.timer = null;
    this.periodic = null;
    this.seq = 0;
  }

  start() {
    this.stop();
    this.periodic = setInterval(() => this.reconcile(), RECONCILE_EVERY_MS);
    return this.reconcile();
  }

  stop() {
    clearInterval(this.periodic);
    clearTimeout(this.timer);
    this.periodic = null;
    this.timer = null;
  }

  changed() {
    this.dispatchEvent(new Event('change'));
  }

  list() {
    return listOf(this.users);
  }

  has(user) {
    return this.users.has(user);
  }

  // ensure marks a user present without counting a session (ourselves, when
  // the broker has no presence endpoint and our own join was not seen).
  ensure(user) {
    if (this.users.has(user)) return;
    this.users.set(user, { sessions: 1, nodes: new Set() });
    this.changed();
  }

  // apply takes one event body from the presence topic.
  apply(ev) {
    if (!ev || typeof ev.user !== 'string' || ev.user === '') return;
    const cur = this.users.get(ev.user);
    // events are per user, not per session: join is a user's first
    // session anywhere, leave their last one gone
    if (ev.type === 'join') {
      if (cur) {
        if (ev.node) cur.nodes.add(String(ev.node));
      } else {
        this.users.set(ev.user, { sessions: 1, nodes: new Set(ev.node ? [String(ev.node)] : []) });
      }
    } else if (ev.type === 'leave') {
      if (!cur) return;
      this.users.delete(ev.user);
    } else {
      return;
    }
    this.changed();
    this.scheduleReconcile();
  }

  scheduleReconcile() {
    if (this.available === false) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reconcile(), RECONCILE_DELAY_MS);
  }

  async reconcile() {
    const seq = ++this.seq;
    let res;
    try {
      res = await this.fetch(PRESENCE_URL, { headers: { accept: 'application/json', ...this.headers() }, cache: 'no-store' });
    } catch {
      return; // broker unreachable: the connection status says so already
    }
    if (res.status === 404 || res.status === 405 || res.status === 501) {
      if (this.available !== false) {
        this.available = false;
        this.changed();
      }
      return;
    }
    if (!res.ok) return;
    let body;
    try {
      body = await res.json();
    } catch {
      return;
    }
    if (seq !== this.seq || !body || !Array.isArray(body.users)) return; // a newer fetch wins
    const next = new Map();
    for (const u of body.users) {
      if (!u || typeof u.user !== 'string' || u.user === '') continue;
      const sessions = Number.isFinite(u.sessions) && u.sessions > 0 ? u.sessions : 1;
      next.set(u.user, { sessions, nodes: new Set(Array.isArray(u.nodes) ? u.nodes.map(String) : []) });
    }
    // A snapshot that only confirms what the list shows changes nothing:
    // re-rendering the list for it would swap the very entry a user is
    // tapping.
    const same = this.available === true && this.complete && JSON.stringify(listOf(next)) === JSON.stringify(this.list());
    this.users = next;
    this.available = true;
    this.complete = true;
    if (!same) this.changed();
  }
}
