// Types for livenotify.js, the browser client of livenotifyd (wire protocol v1:
// docs/protocol.md).

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Minimal Storage (window.localStorage fits). */
export interface LastIdStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem?(key: string): void;
}

export interface LiveNotifyOptions {
  /** WebSocket endpoint, e.g. `wss://app.example/ws`; a path or http(s) URL is converted. */
  url: string;
  /** A static token (JWT, or an opaque token for `auth = sql`). */
  token?: string;
  /** Called before every connection attempt, so an expired token can be replaced. */
  getToken?: () => string | Promise<string>;
  /** Resume point: the largest notification id the app has already shown. */
  lastId?: number;
  /**
   * Resume point: the `cursor` of the last notification the app has shown (opaque). Wins over
   * lastId; without it the stored cursor is used unless lastId is given.
   */
  cursor?: string;
  /** Where the largest id (and, under `<storageKey>:cursor`, the cursor) seen is kept between page loads. */
  storage?: LastIdStorage;
  /** Storage key; include the user, e.g. `livenotify:lastId:42`. Default `livenotify:lastId`. */
  storageKey?: string;
  /** First reconnect ceiling in ms (default 500); doubles per failed attempt. */
  minDelayMs?: number;
  /** Largest reconnect ceiling in ms (default 30000). */
  maxDelayMs?: number;
  /** A connection must stay up this long before the backoff starts over (default 5000). */
  stableAfterMs?: number;
  /** Send `{"type":"ping"}` after this much silence; 0 disables (default 30000). */
  heartbeatMs?: number;
  /** Reconnect when nothing arrives this long after a ping (default 10000). */
  heartbeatTimeoutMs?: number;
  /** WebSocket constructor to use (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
  /**
   * Share one socket among the tabs of this user in this browser (Web Locks +
   * BroadcastChannel): one tab holds it, the others get its frames; when that tab closes
   * another takes over and resumes from the shared cursor. Default: on when the browser has
   * both APIs and the group has a per-user name (`shareKey`, else `storageKey`); `false`: a
   * socket per tab; `true`: share even without a key (one group per URL: one user per browser).
   */
  shareConnection?: boolean;
  /** Name of the sharing group; must differ between users, e.g. `user:42`. Default: storageKey. */
  shareKey?: string;
}

/** `solo`: this tab's own socket; `leader`: holds the socket its user's tabs share; `follower`: gets the leader's frames. */
export type ClientRole = 'solo' | 'leader' | 'follower';

export interface HelloFrame {
  type: 'hello';
  protocol: number;
  /** The authenticated user key, e.g. `"42"`. */
  user: string;
  /** The database queue's lifetime; 0 while the daemon has not reached the database. */
  epoch: number;
}

export interface NotificationFrame<Row = Record<string, unknown>> {
  type: 'notification';
  source: string;
  id: number;
  /** Resume cursor: what the tab has had once it has this frame (absent when unknown). */
  cursor?: string;
  /** The row as the database serialised it, or `{id, truncated: true}` when too large. */
  notification: Row | { id: number; truncated: true };
  /** Absent when the source has no read column. */
  unread_count?: number;
}

export interface UnreadCountFrame {
  type: 'unread_count';
  source: string;
  unread_count: number;
}

export interface ResyncFrame {
  type: 'resync';
  reason: 'epoch' | 'position' | 'lost' | 'overflow' | 'catchup_limit' | 'catchup_failed' | 'no_resume_source' | 'cursor_foreign' | 'shared_gap' | string;
}

/** An ephemeral kind sent with livenotify.send(), e.g. `new_message`. */
export interface EphemeralFrame {
  type: string;
  payload?: unknown;
  [member: string]: unknown;
}

/**
 * `reconnecting` is emitted twice per retry: when it is scheduled (with `delayMs` and the
 * close's `code`/`reason`) and when the attempt starts.
 */
export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** Failed attempts since the connection was last stable. */
  attempt?: number;
  /** Close code / reason that caused this state, when there was one. */
  code?: number;
  reason?: string;
  /** In `reconnecting`: the delay before the next attempt. */
  delayMs?: number;
}

export interface ErrorEvent {
  /** `auth`: closed with 1008 (token refused); `token_expired`: closed with 4001 at the
   * token's exp; `token`: getToken() threw; `url`: bad URL. */
  kind: 'auth' | 'token_expired' | 'token' | 'url';
  code?: number;
  reason?: string;
  error?: unknown;
}

export interface LiveNotifyEvents {
  hello: HelloFrame;
  /** Live and replayed (resumed) notifications, oldest first. */
  notification: NotificationFrame;
  /** From `unread_count` frames and from the count inside every notification. */
  unread_count: UnreadCountFrame;
  /** Refetch notifications and the unread count from the app's API. */
  resync: ResyncFrame;
  new_message: EphemeralFrame;
  state: StateEvent;
  error: ErrorEvent;
  /** Every frame received. */
  '*': { type: string; [member: string]: unknown };
}

export class LiveNotifyClient {
  constructor(options: LiveNotifyOptions);
  readonly url: string;
  /** Largest notification id received; sent as `last_id` on every (re)connection. */
  lastId: number;
  /** Cursor of the last notification received (null before one); sent as `cursor`. */
  cursor: string | null;
  readonly state: ConnectionState;
  /** The current connection's hello frame, or null. */
  readonly hello: HelloFrame | null;
  /** How this tab is connected; null before connect() and after close(). */
  readonly role: ClientRole | null;
  on<K extends keyof LiveNotifyEvents>(type: K, listener: (ev: LiveNotifyEvents[K]) => void): () => void;
  /** Any other ephemeral kind, by its name. */
  on(type: string, listener: (ev: EphemeralFrame) => void): () => void;
  off(type: string, listener: (ev: any) => void): void;
  /** Open the connection (again, after close() or an authentication failure with a static token). */
  connect(): void;
  /** Close for good (code 1000); no reconnect until connect(). */
  close(): void;
  /** Replace the static token, e.g. after an `error` of kind `auth`. */
  setToken(token: string): void;
}

export const STATES: readonly ConnectionState[];
export default LiveNotifyClient;
