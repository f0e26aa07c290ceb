// Entry point of the stompbus page: the tab strip, the connection status in
// the header, the chat and the live view.
import { Chat } from './chat.js';
import { LiveView } from './live.js';
import { $, fill } from './dom.js';

function setupTabs(onChange) {
  const tabs = [$('tab-chat'), $('tab-live')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    const name = tab.id.replace('tab-', '');
    if (window.location.hash !== `#${name}`) window.history.replaceState(null, '', `#${name}`);
    onChange(name);
  };
  for (const t of tabs) {
    t.addEventListener('click', () => select(t, false));
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      let j = null;
      if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
      if (e.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
      if (e.key === 'Home') j = 0;
      if (e.key === 'End') j = tabs.length - 1;
      if (j !== null) {
        e.preventDefault();
        select(tabs[j], true);
      }
    });
  }
  const fromHash = () => select(window.location.hash === '#live' ? tabs[1] : tabs[0], false);
  window.addEventListener('hashchange', fromHash);
  fromHash();
}

function setupStatus(chat) {
  const box = $('status');
  const text = $('status-text');
  const now = $('reconnect-now');
  const logout = $('logout');
  let countdown = null;
  now.addEventListener('click', () => chat.conn && chat.conn.reconnectNow());
  logout.addEventListener('click', () => {
    void chat.leave();
    show({ state: 'idle', text: 'Chat: not joined' });
  });
  const show = (d) => {
    clearInterval(countdown);
    box.dataset.state = d.state;
    box.dataset.since = String(Date.now());
    if (d.state === 'waiting' && d.until) {
      box.dataset.retryMs = String(d.waitMs);
      box.dataset.retryUntil = String(d.until);
      const base = d.text.replace(/in \d+ s/, 'in %s');
      const tick = () => fill(text, base.replace('%s', `${Math.max(0, Math.ceil((d.until - Date.now()) / 1000))} s`));
      tick();
      countdown = setInterval(tick, 1000);
    } else {
      fill(text, d.text);
    }
    now.hidden = d.state !== 'waiting';
    logout.hidden = !chat.conn;
  };
  return show;
}

function boot() {
  let show = () => {};
  const chat = new Chat({ onStatus: (d) => show(d) });
  show = setupStatus(chat);
  const live = new LiveView({ headers: () => chat.authHeaders() });
  live.start();
  setupTabs((name) => live.setVisible(name === 'live'));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
