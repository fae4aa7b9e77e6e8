// tabgroup.js: the tabs of one user in one browser share one livenotifyd socket.
//
// One tab of the group holds a Web Lock named after the group and, with it, the socket (the
// leader); every other tab (a follower) waits in the lock's queue and gets each frame the
// leader receives over a BroadcastChannel of the same name.  The browser releases the lock
// when the leader's page goes away (closed, navigated, crashed), so the next tab in the queue
// is granted it at once and opens its own socket, resuming from the cursor of the last frame it
// got over the channel: the daemon replays whatever the old leader received but never passed
// on, and what both delivered is dropped by id (LiveNotifyClient's dedupe).
//
// A tab that joins asks the leader for the frames it missed while its page was loading; the
// leader answers from the last BUFFER_FRAMES notifications it delivered.  When that buffer does
// not reach back to the joiner's lastId the joiner gets a `resync` (the page refetches), the
// same answer the daemon gives when its own replay cannot cover a gap.
//
// Messages (same origin only: BroadcastChannel and Web Locks are scoped to the origin and the
// browser profile); every message is checked for shape, because a page may load other code:
//   {t: 'join', from, lastId}            a tab asks for the state and the frames it missed
//   {t: 'welcome', to, state, hello, base, frames}
//   {t: 'frame', frame}                  every frame the leader's socket received, parsed
//   {t: 'state', state, detail}          the leader's connection state
//   {t: 'lead'}                          a tab has just taken the lock: joins not yet
//                                        welcomed (sent while no tab led) are sent again

/** Notifications each tab keeps to bring a joining tab up to date. */
export const BUFFER_FRAMES = 256;
/** Frames a joining tab holds while it waits for the leader's welcome. */
const PENDING_FRAMES = 1024;
/** A leader busy this long with the welcome is treated as absent (the joiner resyncs). */
const WELCOME_TIMEOUT_MS = 2000;

/** Web Locks and BroadcastChannel both exist (else each tab keeps its own socket). */
export function sharingAvailable() {
  return (
    typeof BroadcastChannel === 'function' &&
    typeof navigator !== 'undefined' &&
    !!navigator.locks &&
    typeof navigator.locks.request === 'function'
  );
}

function randomId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

function isFrame(v) {
  return !!v && typeof v === 'object' && typeof v.type === 'string';
}

export class TabGroup {
  /**
   * @param {string} name  lock and channel name (one per user and daemon)
   * @param {object} hooks
   *   lead()               this tab now holds the lock: open the socket
   *   frame(frame)         a frame from the leader's socket
   *   state(state, detail) the leader's connection state
   *   welcome(w)           {state, hello, frames, complete}: answer to this tab's join
   *   lastId()             this tab's resume point, sent with join
   *   leaderInfo()         {state, hello} of this tab, for a welcome it gives as leader
   */
  constructor(name, hooks) {
    this.name = name;
    this.hooks = hooks;
    this.id = randomId();
    this.leading = false;
    this._channel = null;
    this._abort = null;
    this._release = null;
    this._welcomeTimer = null;
    this._pending = null; // frames held until the welcome, or null when not waiting
    this._pendingLost = false; // more arrived than PENDING_FRAMES: the joiner must resync
    // Recent notifications, oldest first, and the highest id this buffer no longer holds.
    this._recent = [];
    this._base = 0;
  }

  get running() {
    return this._channel !== null;
  }

  /** Join the group: listen on the channel, ask for a welcome, queue for the lock. */
  start(baseLastId) {
    if (this._channel) return;
    this._recent = [];
    this._base = Number(baseLastId) || 0;
    const channel = new BroadcastChannel(this.name);
    this._channel = channel;
    channel.onmessage = (ev) => {
      if (channel === this._channel) this._onMessage(ev.data);
    };
    const abort = new AbortController();
    this._abort = abort;
    navigator.locks
      .request(this.name, { signal: abort.signal }, () => {
        if (abort.signal.aborted || channel !== this._channel) return undefined;
        // Held until release(): the promise returned here keeps the lock.
        return new Promise((resolve) => {
          this._release = resolve;
          this.leading = true;
          // Frames held for a welcome that will not come now: the socket's resume, from
          // this tab's cursor, brings them (and any that did not fit) again.
          this._dropWait();
          this._post({ t: 'lead' });
          this.hooks.lead();
        });
      })
      .catch(() => {
        /* AbortError: stop() was called while this tab was queued */
      });
    this._pending = [];
    this._pendingLost = false;
    this._welcomeTimer = setTimeout(() => this._endWait(), WELCOME_TIMEOUT_MS);
    this._post({ t: 'join', from: this.id, lastId: this.hooks.lastId() });
  }

  /** Leave the group: give up the lock (the next tab takes over) and the channel. */
  stop() {
    this._dropWait();
    if (this._abort) this._abort.abort();
    this._abort = null;
    const release = this._release;
    this._release = null;
    this.leading = false;
    if (release) release();
    if (this._channel) this._channel.close();
    this._channel = null;
  }

  /** Leader: pass a frame from the socket on to the other tabs. */
  publishFrame(frame) {
    this._post({ t: 'frame', frame });
  }

  /** Leader: pass a state change on. */
  publishState(state, detail) {
    this._post({ t: 'state', state, detail });
  }

  /** Every tab remembers what it delivered, so whichever leads can welcome a new tab. */
  remember(frame) {
    this._recent.push(frame);
    if (this._recent.length > BUFFER_FRAMES) {
      const dropped = this._recent.shift();
      if (dropped.id > this._base) this._base = dropped.id;
    }
  }

  _post(msg) {
    if (!this._channel) return;
    try {
      this._channel.postMessage(msg);
    } catch {
      /* a frame that cannot be cloned: nothing we send is such */
    }
  }

  // A joining tab holds the frames the leader sends until the welcome (so the frames it
  // missed come first); without one in time it delivers them and tells the page to refetch.
  _endWait() {
    const pending = this._pending;
    if (pending === null || this.leading) return;
    this._dropWait();
    this.hooks.welcome({ complete: false, frames: [], state: null, hello: null });
    for (const f of pending) this.hooks.frame(f);
  }

  _dropWait() {
    this._pending = null;
    clearTimeout(this._welcomeTimer);
    this._welcomeTimer = null;
  }

  _onMessage(msg) {
    if (!msg || typeof msg !== 'object' || typeof msg.t !== 'string') return;
    switch (msg.t) {
      case 'join':
        if (!this.leading || typeof msg.from !== 'string') return;
        this._welcome(msg.from, Number(msg.lastId) || 0);
        return;
      case 'welcome': {
        if (msg.to !== this.id || this._pending === null || this.leading) return;
        const frames = Array.isArray(msg.frames) ? msg.frames.filter(isFrame) : [];
        const pending = this._pending;
        this._dropWait();
        this.hooks.welcome({
          complete: !this._pendingLost && Number(msg.base) <= (Number(this.hooks.lastId()) || 0),
          frames: frames.slice(0, BUFFER_FRAMES),
          state: typeof msg.state === 'string' ? msg.state : null,
          hello: isFrame(msg.hello) ? msg.hello : null,
        });
        for (const f of pending) this.hooks.frame(f);
        return;
      }
      case 'frame':
        if (this.leading || !isFrame(msg.frame)) return;
        if (this._pending !== null) {
          if (this._pending.length < PENDING_FRAMES) this._pending.push(msg.frame);
          else this._pendingLost = true;
          return;
        }
        this.hooks.frame(msg.frame);
        return;
      case 'lead':
        // Tabs that opened together: this one's join may have reached no leader.
        if (!this.leading && this._pending !== null) {
          this._post({ t: 'join', from: this.id, lastId: this.hooks.lastId() });
        }
        return;
      case 'state':
        if (this.leading || typeof msg.state !== 'string') return;
        this.hooks.state(msg.state, msg.detail && typeof msg.detail === 'object' ? msg.detail : {});
        return;
      default:
    }
  }

  _welcome(to, lastId) {
    const info = this.hooks.leaderInfo();
    this._post({
      t: 'welcome',
      to,
      state: info.state,
      hello: info.hello,
      base: this._base,
      frames: this._recent.filter((f) => f.id > lastId),
    });
  }
}
