// livenotify.js: browser client for livenotifyd (wire protocol v1, docs/protocol.md).
//
// A dependency-free ES module. One LiveNotifyClient keeps one WebSocket to the daemon open:
// it authenticates, reconnects with exponential backoff and full jitter, and resumes from the
// cursor of the last notification it saw (or its id), so the daemon replays exactly what was
// committed while it was away: also a row with a smaller id that committed later.  The
// clients of one user's tabs share one socket (tabgroup.js): one tab holds it, the others get
// its frames over a BroadcastChannel, and another takes over when that tab goes away.
//
//   import { LiveNotifyClient } from 'livenotify-client';
//   const client = new LiveNotifyClient({
//     url: 'wss://app.example/ws',
//     getToken: () => fetch('/api/livenotify-token').then((r) => r.text()),
//     storage: localStorage, storageKey: `livenotify:lastId:${userId}`,
//   });
//   client.on('notification', (f) => showToast(f.notification));
//   client.on('unread_count', (f) => setBadge(f.unread_count));
//   client.on('new_message', (f) => showChatPopup(f.message));
//   client.on('resync', () => refetchNotificationsFromTheApi());
//   client.on('state', ({ state }) => setConnectionIndicator(state));
//   client.connect();
//
// Types: livenotify.d.ts next to this file.

import { TabGroup, sharingAvailable } from './tabgroup.js';

const STATES = Object.freeze(['idle', 'connecting', 'open', 'reconnecting', 'closed']);

// Close reasons (code 1008) that a new attempt with the same credentials cannot fix.  Not
// 'authentication timeout' (our auth message was late: a stall, worth another try) nor
// 'send queue full' (we read too slowly: resume).
const AUTH_REASONS = new Set(['unauthorized']);
// The daemon closes a socket when its token expires (docs/protocol.md): a new token is needed.
const CLOSE_TOKEN_EXPIRED = 4001;
// Notification ids a shared client remembers to drop the frames a takeover brings twice.
const SEEN_IDS = 4096;

export class LiveNotifyClient {
  /** @param {import('./livenotify').LiveNotifyOptions} options */
  constructor(options) {
    if (!options || !options.url) throw new TypeError('LiveNotifyClient: url is required');
    if (options.token == null && typeof options.getToken !== 'function') {
      throw new TypeError('LiveNotifyClient: token or getToken() is required');
    }
    this.url = resolveUrl(options.url);
    this._token = options.token ?? null;
    this._getToken = options.getToken ?? null;
    this._storage = options.storage ?? null;
    this._storageKey = options.storageKey ?? 'livenotify:lastId';
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._minDelay = options.minDelayMs ?? 500;
    this._maxDelay = options.maxDelayMs ?? 30000;
    // A connection counts as healthy (backoff starts over) only after it stayed up this long,
    // so a server that accepts and then drops us at once still sees growing delays.
    this._stableAfter = options.stableAfterMs ?? 5000;
    this._heartbeat = options.heartbeatMs ?? 30000;
    this._heartbeatTimeout = options.heartbeatTimeoutMs ?? 10000;

    // An explicit lastId is what the app has already shown; otherwise what any tab of this
    // user saw last (storage), so a reloaded page does not replay old notifications.
    const stored = this._readStored();
    this.lastId = options.lastId != null ? Number(options.lastId) : stored ?? 0;
    // The resume cursor (docs/protocol.md "Resume"): an explicit one, else the stored one
    // unless the app passed its own lastId (then that is what it has shown).
    this.cursor =
      options.cursor != null
        ? String(options.cursor)
        : options.lastId != null
          ? null
          : this._readStoredCursor();

    this.state = 'idle';
    /** The `hello` frame of the current connection (user, epoch), or null. */
    this.hello = null;
    this._listeners = new Map();
    this._ws = null;
    this._attempt = 0;
    this._timers = {};
    this._generation = 0; // bumps on every connect/close, so stale callbacks do nothing

    // Sharing: on by default when the browser can (Web Locks + BroadcastChannel) and the
    // group has a name that is per user: shareKey, else storageKey (which the docs tell to
    // include the user).  Tabs of different users must never share a group.
    const key = options.shareKey ?? options.storageKey ?? null;
    const share = options.shareConnection ?? 'auto';
    /** 'solo' (own socket), 'leader' (holds the shared socket), 'follower', or null before connect(). */
    this.role = null;
    this._group = null;
    if (share !== false && sharingAvailable() && (key != null || share === true)) {
      this._group = new TabGroup(`livenotify:${this.url}:${key ?? ''}`, {
        lead: () => this._lead(),
        frame: (frame) => this._handleFrame(frame, false),
        state: (state, detail) => this._setState(state, detail),
        welcome: (w) => this._onWelcome(w),
        lastId: () => this.lastId,
        leaderInfo: () => ({ state: this.state, hello: this.hello }),
      });
    }
    this._seen = new Set();
  }

  // ---------------------------------------------------------------- events

  /** Subscribe; returns a function that unsubscribes. `'*'` receives every frame. */
  on(type, listener) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    const set = this._listeners.get(type);
    if (set) set.delete(listener);
  }

  _emit(type, payload) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      // A throwing listener must not break delivery to the others or the connection.
      try {
        listener(payload);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Open the connection (again, after close() or an authentication failure). */
  connect() {
    if (this.state === 'connecting' || this.state === 'open' || this.state === 'reconnecting') {
      return;
    }
    this._attempt = 0;
    if (!this._group) {
      this.role = 'solo';
      this._open('connecting');
      return;
    }
    // A follower until the lock says otherwise: the group's leader (if any) welcomes it.
    this.role = 'follower';
    this._setState('connecting', { attempt: 0 });
    this._group.start(this.lastId);
  }

  /** Close for good: no reconnect until connect() is called again. */
  close() {
    this._generation++;
    this._clearTimers();
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, 'client closed');
    this._setState('closed', { code: 1000, reason: 'client closed' });
  }

  // ---------------------------------------------------------------- sharing

  // This tab was granted the group's lock: the previous holder is gone (or there was none).
  // Open the socket from this tab's own resume point: the last frame it got over the channel.
  _lead() {
    this.role = 'leader';
    this._attempt = 0;
    this._open(this.state === 'connecting' ? 'connecting' : 'reconnecting');
  }

  _onWelcome({ complete, frames, state, hello }) {
    if (hello) {
      this.hello = hello;
      this._emit('hello', hello);
      this._emit('*', hello);
    }
    if (state && state !== 'closed' && state !== this.state) this._setState(state, {});
    for (const f of frames) this._handleFrame(f, false);
    // The leader no longer holds what this tab missed while it loaded: refetch, as after the
    // daemon's own resync.
    if (!complete) this._handleFrame({ type: 'resync', reason: 'shared_gap' }, false);
  }

  // A frame delivered twice by a takeover (the old leader passed it on, the new leader's
  // resume brings it again) is dropped by its id.
  _duplicate(frame) {
    if (!this._group || frame.type !== 'notification' || typeof frame.id !== 'number') return false;
    const key = `${frame.source}\u0000${frame.id}`;
    if (this._seen.has(key)) return true;
    this._seen.add(key);
    if (this._seen.size > SEEN_IDS) this._seen.delete(this._seen.values().next().value);
    return false;
  }

  /** Replace the static token (e.g. after an authentication failure); then call connect(). */
  setToken(token) {
    this._token = token;
  }

  async _open(state) {
    const gen = ++this._generation;
    this._clearTimers();
    this._setState(state, { attempt: this._attempt });
    let token;
    try {
      token = this._getToken ? await this._getToken() : this._token;
    } catch (err) {
      if (gen !== this._generation) return;
      this._emit('error', { kind: 'token', error: err });
      this._scheduleReconnect({ code: 0, reason: 'getToken failed' });
      return;
    }
    if (gen !== this._generation) return;

    let ws;
    try {
      ws = new this._WebSocket(this.url, 'livenotify.v1');
    } catch (err) {
      // A malformed URL: retrying cannot help.
      this._emit('error', { kind: 'url', error: err });
      this._setState('closed', { code: 0, reason: String(err && err.message) });
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      if (gen !== this._generation) return;
      // The token travels in the first message, not the URL: it stays out of access logs,
      // and a refused token comes back as close code 1008, which a page can see (a refused
      // upgrade is only an anonymous 1006 to browser code).
      const auth = { type: 'auth', token: String(token), last_id: this.lastId };
      // The daemon resumes by the cursor when there is one, by last_id otherwise.
      if (this.cursor) auth.cursor = this.cursor;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (ev) => {
      if (gen !== this._generation) return;
      this._onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen !== this._generation) return;
      this._ws = null;
      this._onClose(ev.code, ev.reason || '');
    };
    // onerror is always followed by onclose, which decides what happens next.
    ws.onerror = () => {};
  }

  _onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // not JSON: not ours to interpret
    }
    if (!frame || typeof frame.type !== 'string') return;
    this._armHeartbeat();
    this._handleFrame(frame, true);
  }

  // A frame from this tab's socket (own) or from the leader's, over the channel.
  _handleFrame(frame, own) {
    if (this._duplicate(frame)) return;
    if (own && this.role === 'leader' && frame.type !== 'pong') this._group.publishFrame(frame);
    switch (frame.type) {
      case 'hello':
        this.hello = frame;
        if (own) {
          this._setState('open', { attempt: this._attempt });
          this._timers.stable = setTimeout(() => {
            this._attempt = 0;
          }, this._stableAfter);
        }
        this._emit('hello', frame);
        break;
      case 'notification':
        if (typeof frame.id === 'number' && frame.id > this.lastId) {
          this.lastId = frame.id;
          this._writeStored(frame.id);
        }
        if (typeof frame.cursor === 'string' && frame.cursor) {
          this.cursor = frame.cursor;
          this._writeStoredCursor(frame.cursor);
        }
        // Kept for a tab that joins later (the welcome), whichever tab leads then.
        if (this._group) this._group.remember(frame);
        this._emit('notification', frame);
        // The count travels inside the notification: one listener keeps a badge right.
        if (typeof frame.unread_count === 'number') {
          this._emit('unread_count', {
            type: 'unread_count',
            source: frame.source,
            unread_count: frame.unread_count,
          });
        }
        break;
      case 'pong':
        break;
      case 'resync':
        // A cursor of another database history (failover): never useful again.
        if (frame.reason === 'cursor_foreign') this._forgetCursor();
        this._emit('resync', frame);
        break;
      default:
        // unread_count and every ephemeral kind (new_message, ...) by its own name.
        this._emit(frame.type, frame);
    }
    this._emit('*', frame);
  }

  _onClose(code, reason) {
    this._clearTimers();
    this.hello = null;
    const info = { code, reason };
    // A cursor the daemon cannot parse (corrupted storage): resume by last_id instead.
    if (code === 1008 && reason === 'bad cursor') this._forgetCursor();
    if (code === CLOSE_TOKEN_EXPIRED) {
      this._emit('error', { kind: 'token_expired', code, reason });
      if (!this._getToken) {
        // The daemon would refuse the same token: stop until setToken() and connect().
        this._setState('closed', info);
        return;
      }
      // getToken() is asked for a new token now (no backoff: nothing failed); the resume
      // cursor is kept, so the rows of the gap are replayed.  A connection that did not
      // stay up stableAfterMs takes the usual delays (a token endpoint handing out tokens
      // about to expire is not hammered).
      if (this._attempt === 0) {
        this._attempt++;
        this._open('reconnecting');
        return;
      }
    }
    if (code === 1008 && AUTH_REASONS.has(reason)) {
      this._emit('error', { kind: 'auth', code, reason });
      if (!this._getToken) {
        // The same static token would be refused again: stop instead of looping.
        this._setState('closed', info);
        return;
      }
      // getToken() may hand out a fresh token; keep backing off (the attempt counter is
      // not reset) so a token endpoint that keeps giving bad tokens is not hammered.
    }
    this._scheduleReconnect(info);
  }

  _scheduleReconnect(info) {
    // Full jitter: a uniform delay in [0, min(max, min * 2^attempt)], so that the clients a
    // restarted daemon dropped all at once do not come back all at once.
    const ceiling = Math.min(this._maxDelay, this._minDelay * 2 ** this._attempt);
    const delay = Math.round(Math.random() * ceiling);
    this._attempt++;
    const gen = this._generation;
    this._setState('reconnecting', { ...info, attempt: this._attempt, delayMs: delay });
    this._timers.retry = setTimeout(() => {
      if (gen === this._generation) this._open('reconnecting');
    }, delay);
  }

  // Application-level ping: a browser cannot see a peer that vanished without a FIN (laptop
  // asleep, NAT timeout) until TCP gives up, minutes later.  Any frame proves liveness.
  _armHeartbeat() {
    if (!this._heartbeat) return;
    clearTimeout(this._timers.ping);
    clearTimeout(this._timers.dead);
    const ws = this._ws;
    this._timers.ping = setTimeout(() => {
      if (!ws || ws !== this._ws || ws.readyState !== 1) return;
      ws.send('{"type":"ping"}');
      this._timers.dead = setTimeout(() => {
        if (ws !== this._ws) return;
        // Do not wait for the close handshake a dead peer will never answer: forget this
        // socket (its late events are ignored) and reconnect now.
        this._generation++;
        this._ws = null;
        try {
          ws.close(4000, 'heartbeat timeout');
        } catch {
          /* already closing */
        }
        this._onClose(4000, 'heartbeat timeout');
      }, this._heartbeatTimeout);
    }, this._heartbeat);
  }

  _clearTimers() {
    for (const t of Object.values(this._timers)) clearTimeout(t);
    this._timers = {};
  }

  _setState(state, detail = {}) {
    const previous = this.state;
    this.state = state;
    if (state === 'closed') this.role = null;
    if (this._group) {
      if (state === 'closed') {
        // Closed for good here (close(), or a static token refused): let another tab lead.
        this._group.stop();
      } else if (this.role === 'leader') {
        this._group.publishState(state, detail);
      }
    }
    this._emit('state', { state, previous, ...detail });
  }

  // ---------------------------------------------------------------- storage

  _readStored() {
    if (!this._storage) return null;
    try {
      const v = Number(this._storage.getItem(this._storageKey));
      return Number.isSafeInteger(v) && v > 0 ? v : null;
    } catch {
      return null; // storage disabled (private mode, quota): resume from memory only
    }
  }

  _readStoredCursor() {
    if (!this._storage) return null;
    try {
      const v = this._storage.getItem(this._storageKey + ':cursor');
      return typeof v === 'string' && v.length > 0 && v.length <= 1400 ? v : null;
    } catch {
      return null;
    }
  }

  _writeStoredCursor(cursor) {
    if (!this._storage) return;
    try {
      // Tabs of a user get the same stream: the latest cursor written stands for all.
      this._storage.setItem(this._storageKey + ':cursor', cursor);
    } catch {
      /* storage full or disabled: the cursor still works within this page */
    }
  }

  _forgetCursor() {
    this.cursor = null;
    if (!this._storage) return;
    try {
      this._storage.removeItem?.(this._storageKey + ':cursor');
    } catch {
      /* nothing to forget */
    }
  }

  _writeStored(id) {
    if (!this._storage) return;
    try {
      // Tabs of the same user share the key: keep the largest id any of them saw.
      const stored = this._readStored() ?? 0;
      if (id > stored) this._storage.setItem(this._storageKey, String(id));
    } catch {
      /* storage full or disabled: resume still works within this page */
    }
  }
}

// Accept a path ('/ws') or an http(s) URL for convenience; WebSocket wants ws(s).
function resolveUrl(url) {
  if (typeof location !== 'undefined' && !/^[a-z]+:/i.test(url)) {
    url = new URL(url, location.href).href;
  }
  return url.replace(/^http(s?):/i, 'ws$1:');
}

export { STATES };
export default LiveNotifyClient;
