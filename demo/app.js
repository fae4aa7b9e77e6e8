// app.js: the livenotify demo page.  Everything live comes through LiveNotifyClient; the
// demo server (demo/server.py, demo only) stands in for the app's own API: tokens, the list
// of notifications, insert and mark-as-read.
import { LiveNotifyClient } from 'livenotify-client';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const userId = Number(params.get('user') || 1);
// ?share=0: this tab keeps its own socket instead of sharing one with the user's other tabs.
const shareConnection = params.get('share') !== '0';

// Rows by id: a row can reach the page twice (the initial list and a live frame, or a
// refetch after resync), and must be shown once.
const rows = new Map();
let unread = 0;
let client;

// For the browser test and the curious: every frame in arrival order, and the client.
window.livenotifyDemo = { frames: [], rows, get client() { return client; } };

async function api(path, { method = 'GET', body, auth = true } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = `Bearer ${await token()}`;
  const res = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status}`);
  return res.json();
}

// The app issues the token; the client asks again before every connection, so an expired
// one is replaced without a page reload.
let cachedToken = null;
async function token(fresh = false) {
  if (!cachedToken || fresh) {
    const res = await fetch(`/api/token?user=${userId}`);
    if (!res.ok) throw new Error(`token: ${res.status}`);
    cachedToken = (await res.json()).token;
  }
  return cachedToken;
}

// ------------------------------------------------------------------ rendering

function setBadge(n) {
  unread = n;
  $('badge').textContent = String(n);
  $('badge').dataset.count = String(n);
  document.title = n ? `(${n}) livenotify demo` : 'livenotify demo';
}

function setState(state, detail = {}) {
  const el = $('state');
  el.dataset.state = state;
  el.dataset.role = (client && client.role) || '';
  let text = state;
  if (state === 'reconnecting' && detail.delayMs != null) {
    text = `reconnecting (attempt ${detail.attempt}, ${(detail.delayMs / 1000).toFixed(1)} s)`;
  } else if (state === 'open') {
    // A follower gets its frames from the tab that holds the user's socket.
    text = client && client.role === 'follower' ? 'live (shared)' : 'live';
  } else if (state === 'closed' && detail.reason) {
    text = `closed: ${detail.reason}`;
  }
  el.textContent = text;
}

function logFrame(frame) {
  const li = document.createElement('li');
  li.textContent = JSON.stringify(frame);
  const log = $('log');
  log.prepend(li);
  while (log.children.length > 40) log.lastChild.remove();
}

function toast(text) {
  const div = document.createElement('div');
  div.className = 'toast';
  div.textContent = text;
  $('toasts').append(div);
  setTimeout(() => div.remove(), 5000);
}

function render(freshId) {
  const list = $('list');
  const sorted = [...rows.values()].sort((a, b) => b.id - a.id).slice(0, 50);
  list.replaceChildren(...sorted.map((row) => item(row, row.id === freshId)));
  $('empty').hidden = sorted.length > 0;
}

function item(row, fresh) {
  const li = document.createElement('li');
  li.dataset.id = String(row.id);
  li.className = (row.is_read ? 'read' : 'unread') + (fresh ? ' fresh' : '');
  const dot = document.createElement('span');
  dot.className = 'dot';
  const body = document.createElement('div');
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = row.truncated ? `Notification #${row.id} (too large to push)` : row.title;
  const message = document.createElement('div');
  message.textContent = row.message || '';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const type = document.createElement('span');
  type.className = 'type';
  type.textContent = row.type || '?';
  meta.append(type, `#${row.id} · ${row.created_at ? new Date(row.created_at).toLocaleTimeString() : ''}`);
  body.append(title, message, meta);
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'mark-read';
  button.textContent = row.is_read ? 'Read' : 'Mark as read';
  button.disabled = !!row.is_read;
  button.addEventListener('click', () => markRead(row.id));
  li.append(dot, body, button);
  return li;
}

// ------------------------------------------------------------------ actions

async function load() {
  const data = await api('/api/notifications');
  for (const row of data.notifications) rows.set(row.id, { ...rows.get(row.id), ...row });
  setBadge(data.unread_count);
  render();
  return data;
}

// Another tab (or psql) marked rows as read: the count frame says how many are unread, not
// which; fetch the read flags again, at most once per burst of frames.  A refetch that fails
// (the app's database is restarting, say) is tried again until it works: a resync means the
// list may be missing rows.
let refreshTimer = null;
function refreshSoon(delay = 150, retry = 1000) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    load().catch(() => refreshSoon(retry, Math.min(retry * 2, 30000)));
  }, delay);
}

async function markRead(id) {
  const row = rows.get(id);
  if (row) {
    row.is_read = true;
    render();
  }
  // The new count arrives on every tab of this user as an unread_count frame.
  await api('/api/notifications/read', { method: 'POST', body: { id } });
}

// ------------------------------------------------------------------ start

async function main() {
  const config = await (await fetch('/api/config')).json();
  const me = config.users.find((u) => u.id === userId) || { id: userId, name: `user ${userId}` };
  $('whoami').textContent = `${me.name} (user ${me.id})`;
  $('users').replaceChildren(...config.users.map((u) => {
    const a = document.createElement('a');
    a.href = `?user=${u.id}`;
    a.textContent = u.name;
    if (u.id === userId) a.className = 'current';
    return a;
  }));
  for (const sel of [$('create-user'), $('chat-user')]) {
    sel.replaceChildren(...config.users.map((u) => new Option(u.name, u.id, false, u.id === userId)));
  }

  // The list first, then the socket from its newest id: whatever commits in between is
  // replayed by the daemon's catch-up, so nothing falls into the gap.
  const initial = await load();

  client = new LiveNotifyClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${config.ws_port}${config.ws_path}`,
    getToken: () => token(true),
    lastId: initial.last_id,
    storage: localStorage,
    storageKey: `livenotify-demo:lastId:${userId}`,
    // The tabs of this user share one socket (the storage key names the user).
    shareConnection,
    // A demo restarts its daemon by hand: come back quickly.
    maxDelayMs: 5000,
  });
  client.on('state', (ev) => setState(ev.state, ev));
  client.on('*', (frame) => {
    window.livenotifyDemo.frames.push(frame);
    logFrame(frame);
  });
  client.on('notification', (frame) => {
    const row = frame.notification;
    rows.set(frame.id, { ...rows.get(frame.id), ...row, id: frame.id });
    render(frame.id);
  });
  client.on('unread_count', (frame) => {
    setBadge(frame.unread_count);
  });
  // A count without a new row means rows were marked as read somewhere.
  client.on('*', (frame) => {
    if (frame.type === 'unread_count') refreshSoon();
  });
  client.on('resync', () => refreshSoon(0));
  client.on('new_message', (frame) => {
    const m = frame.message || {};
    toast(`${m.from || 'someone'} says: ${m.text || ''}`);
  });
  client.on('error', (ev) => {
    if (ev.kind === 'auth') cachedToken = null;
  });
  client.connect();
}

$('create').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  await api('/api/notifications', {
    method: 'POST',
    auth: false,
    body: Object.fromEntries(form.entries()),
  });
});

$('chat').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  await api('/api/send', {
    method: 'POST',
    auth: false,
    body: { ...Object.fromEntries(form.entries()), from: `user ${userId}` },
  });
});

$('mark-all').addEventListener('click', async () => {
  for (const row of rows.values()) row.is_read = true;
  render();
  await api('/api/notifications/read', { method: 'POST', body: { all: true } });
});

main().catch((err) => {
  setState('closed', { reason: err.message });
  console.error(err);
});
