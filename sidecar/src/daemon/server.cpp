/*
 * server.cpp: sockets, admission, delivery and the HTTP endpoints.
 *
 * Every function in this file runs on the lws service thread unless its
 * comment says otherwise: lws is not thread-safe (LWS_MAX_SMP is 1 in
 * Debian's build) and only this thread may touch a wsi.  Other threads reach
 * us through Shared::inbox + lws_cancel_service() and ControlFlags.
 */
#include "server.hpp"

#include "client_message.hpp"
#include "cursor.hpp"
#include "jwt_verify.hpp"
#include "log.hpp"
#include "resume.hpp"
#include "send_queue.hpp"

#include <ev.h>
#include <libwebsockets.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>

namespace livenotify
{

static const char *const kProtocolName = "livenotify.v1";
/* Longest wait of an lws timer on a quiet libev loop (Server::run()). */
static const double kKickSeconds = 0.05;
/*
 * Rows per catch-up query.  A resuming socket holds at most ~1.5 pages of
 * replay (resume.hpp): 100 rows of at most livenotify.max_payload (8 kB)
 * each is under 1.2 MB, while a typical resume is still a single query.
 */
static const size_t kCatchupPageRows = 100;
/*
 * How long a resume asked for before the reader's first position waits for
 * it (the database unreachable at startup); then resync `catchup_failed`.
 */
static const int kResumeWaitMs = 5000;

namespace
{

/*
 * An lws timer with a pointer back to its owner.  lws hands the callback the
 * lws_sorted_usec_list_t only; lws_container_of() (offsetof) is not defined
 * for our non-standard-layout classes, so the timer is the first member of
 * this standard-layout struct and the owner is found through it.
 */
struct Timer
{
	lws_sorted_usec_list_t sul;
	void *owner;

	static void *owner_of(lws_sorted_usec_list_t *sul)
	{
		return reinterpret_cast<Timer *>(sul)->owner;
	}
};

/* One WebSocket connection's state; lives from admission to close. */
struct Session
{
	uint64_t id = 0;
	struct lws *wsi = nullptr;
	std::string peer;
	std::string user;
	bool authed = false;
	bool registered = false;   /* in the group registry (receiving live frames) */
	bool reserved = false;	   /* holds a total-limit slot while authenticating */
	bool auth_pending = false; /* SQL auth job in flight */
	bool established = false;
	std::string pending_token; /* token to check at ESTABLISHED (SQL mode) */
	std::optional<int64_t> last_id;
	std::optional<Cursor>
		cursor; /* resume cursor (wins over last_id); its had list grows with the replay */
	SendQueue queue;
	ResumeGate gate;
	std::string resume_source;		 /* the source this resume replays (fixed for all its pages) */
	bool resume_count_known = false; /* the count for the replayed rows was queried */
	std::optional<int64_t> resume_unread; /* that count, passed to the next page's job */
	bool resume_waiting = false;		  /* resume asked for before the reader's first position */
	bool before_reader = false; /* authenticated before it: may have missed rows (no resume) */
	int close_code = 0;			/* set when we close: our close frame's code */
	std::string close_reason;
	bool close_requested = false; /* lws has our close frame; waiting for the peer's */
	int peer_close_code = 0;	  /* the peer's close frame (1005: it had no code) */
	std::string peer_close_reason;
	std::string drop_reason; /* why the connection went without a close frame, when we know */
	std::chrono::steady_clock::time_point last_valid; /* established, or the last pong */
	std::string rx;
	Timer auth_timer;
	Timer resume_timer; /* bound of resume_waiting */
	Server *server = nullptr;

	explicit Session(size_t limit) : queue(limit)
	{
		memset(&auth_timer, 0, sizeof(auth_timer));
		auth_timer.owner = this;
		memset(&resume_timer, 0, sizeof(resume_timer));
		resume_timer.owner = this;
	}
};

/* lws's per-connection storage is raw memory (zeroed), so it only holds a pointer. */
struct Pss
{
	Session *session;
};

} // namespace

class Server
{
public:
	Server(Shared *sh, const CommandLine &cmd, ControlFlags *flags)
		: sh_(sh), cmd_(cmd), flags_(flags), cfg_(sh->cfg),
		  groups_(static_cast<size_t>(cfg_.max_sockets),
				  static_cast<size_t>(cfg_.max_sockets_per_user))
	{
		rebuild_verifier();
	}

	bool create();
	void run();
	void destroy();

	int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
				 size_t len);

private:
	/* admission (FILTER_PROTOCOL_CONNECTION) and authentication */
	int filter_upgrade(struct lws *wsi, Pss *pss, const char *protocols_header);
	void send_status(struct lws *wsi, int status, const char *reason);
	int reject(struct lws *wsi, int status, const char *reason, const std::string &peer,
			   const std::string &detail = "");
	void on_established(struct lws *wsi, Session *s);
	void authenticated(Session *s, const std::string &user, const char *how);
	void auth_failed(Session *s, const std::string &reason);
	void on_message(Session *s);
	static void auth_deadline(lws_sorted_usec_list_t *sul);
	void start_resume(Session *s);
	void reader_ready();
	static void resume_wait_deadline(lws_sorted_usec_list_t *sul);

	/* delivery */
	void enqueue(Session *s, const FramePtr &f, bool bypass_gate = false);
	void slow_client(Session *s, const char *during);
	void close_session(Session *s, int code, const std::string &reason);
	int on_writeable(struct lws *wsi, Session *s);
	void feed_resume(Session *s);
	void request_catchup_page(Session *s);
	void drain_inbox();
	void on_catchup(Session *s, Event &e);
	void cleanup(Pss *pss);

	/* HTTP */
	int http_reply(struct lws *wsi, unsigned int status, const char *ctype,
				   const std::string &body);
	int on_http(struct lws *wsi, const char *uri);
	std::string metrics_text();

	/* control */
	void handle_flags();
	void reload();
	void begin_shutdown();
	static void shutdown_tick(lws_sorted_usec_list_t *sul);
	static void watchdog_tick(lws_sorted_usec_list_t *sul);
	static void kick_cb(struct ev_loop *loop, ev_timer *w, int revents);
	void rebuild_verifier();

	Shared *sh_;
	CommandLine cmd_;
	ControlFlags *flags_;
	Config cfg_; /* the service thread's copy: SIGHUP replaces the reloadable parts */
	std::unique_ptr<JwtVerifier> verifier_;
	GroupRegistry<Session *> groups_;
	std::unordered_map<uint64_t, Session *> sessions_;
	std::deque<Event> backlog_; /* inbox events not handled yet (drain_inbox works in slices) */
	uint64_t next_id_ = 1;
	struct lws_context *ctx_ = nullptr;
	struct lws_protocols protocols_[2];
	lws_retry_bo_t retry_;
	bool shutting_down_ = false;
	bool done_ = false;
	std::chrono::steady_clock::time_point shutdown_deadline_;
	Timer shutdown_timer_;
	Timer watchdog_timer_;
	uint64_t watchdog_usec_ = 0;
	/* The libev loop lws runs on (epoll); null when lws fell back to its own poll() loop. */
	struct ev_loop *loop_ = nullptr;
	ev_timer kick_;
};

namespace
{

/* Service thread: the lws entry point for every event of our protocol. */
int
lws_entry(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	Server *server = ctx ? static_cast<Server *>(lws_context_user(ctx)) : nullptr;
	if (!server)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	return server->callback(wsi, reason, user, in, len);
}

/* Any thread (lws logs from the service thread): lws's own warnings and errors as our log lines. */
void
lws_log_emit(int level, const char *line)
{
	std::string l = line ? line : "";
	while (!l.empty() && (l.back() == '\n' || l.back() == '\r'))
		l.pop_back();
	log_event(level & LLL_ERR ? LogLevel::Error : LogLevel::Warn, "lws", "msg=%s",
			  log_quote(l).c_str());
}

} // namespace

void
Server::rebuild_verifier()
{
	if (cfg_.auth == AuthMode::Jwt)
		verifier_ = std::make_unique<JwtVerifier>(JwtSettings{
			cfg_.jwt_alg, cfg_.jwt_key, cfg_.jwt_issuer, cfg_.jwt_audience, cfg_.jwt_leeway_s});
	else
		verifier_.reset();
}

/* Main thread (before the service loop exists). */
bool
Server::create()
{
	/* Only lws errors: its warnings repeat what our own log lines already say (e.g. each
	 * rejection). */
	lws_set_log_level(LLL_ERR, lws_log_emit);

	memset(protocols_, 0, sizeof(protocols_));
	protocols_[0].name = kProtocolName;
	protocols_[0].callback = lws_entry;
	protocols_[0].per_session_data_size = sizeof(Pss);
	/* Client messages are small (auth, resume); bigger ones arrive in pieces and are capped. */
	protocols_[0].rx_buffer_size = 2048;

	/*
	 * lws pings a socket ping_interval_s after it was last known alive (the
	 * upgrade or a pong) and drops it if no pong came by twice that (lws
	 * lib/core-net/wsi-timeout.c, lws_validity_cb): dead peers and half-open
	 * TCP go after 2 x ping_interval_s, as --help and docs/operations.md say.
	 * Only a pong counts, not other traffic (lws 4.1).
	 */
	memset(&retry_, 0, sizeof(retry_));
	retry_.secs_since_valid_ping = static_cast<uint16_t>(cfg_.ping_interval_s);
	retry_.secs_since_valid_hangup = static_cast<uint16_t>(cfg_.ping_interval_s * 2);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = cfg_.port;
	info.iface = cfg_.listen_address.c_str();
	info.protocols = protocols_;
	info.user = this;
	info.retry_and_idle_policy = &retry_;
	info.max_http_header_data = 8192; /* a JWT in ?token= must fit */
	info.timeout_secs = 10;
	info.fd_limit_per_thread = static_cast<unsigned int>(cfg_.max_sockets) + 256;
	/* Invalid UTF-8 in a text frame closes that socket inside lws; it never reaches us. */
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (cfg_.listen_address.find(':') == std::string::npos && cfg_.listen_address != "localhost")
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;

	/*
	 * lws 4.1's own loop poll()s every socket on each turn, and the loop turns
	 * on every inbox hand-off: with thousands of sockets that scan was most of
	 * the daemon's CPU.  Debian's libev plugin for lws (libwebsockets-evlib-ev)
	 * waits with epoll instead.  The loop is ours (foreign), so that lws
	 * installs no signal watcher (signals stay with the signal thread,
	 * main.cpp) and the shutdown can stop it with ev_break().
	 */
	loop_ = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	void *loops[1] = {loop_};
	if (loop_)
	{
		info.options |= LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = loops;
	}
	ctx_ = lws_create_context(&info);
	if (!ctx_ && loop_)
	{
		/* The plugin is missing or failed: serve on lws's poll() loop rather than not at all. */
		LOG_WARN("evlib_unavailable", "loop=poll");
		ev_loop_destroy(loop_);
		loop_ = nullptr;
		info.options &= ~static_cast<uint64_t>(LWS_SERVER_OPTION_LIBEV);
		info.foreign_loops = nullptr;
		ctx_ = lws_create_context(&info);
	}
	if (!ctx_)
	{
		LOG_ERROR("listen_failed", "address=%s port=%d", log_quote(cfg_.listen_address).c_str(),
				  cfg_.port);
		return false;
	}
	sh_->ctx = ctx_;
	LOG_INFO("listening", "address=%s port=%d path=%s auth=%s",
			 log_quote(cfg_.listen_address).c_str(), cfg_.port, log_quote(cfg_.ws_path).c_str(),
			 auth_mode_name(cfg_.auth));

	memset(&shutdown_timer_, 0, sizeof(shutdown_timer_));
	memset(&watchdog_timer_, 0, sizeof(watchdog_timer_));
	shutdown_timer_.owner = this;
	watchdog_timer_.owner = this;
	if (sd_watchdog_enabled(0, &watchdog_usec_) > 0 && watchdog_usec_ > 0)
		lws_sul_schedule(ctx_, 0, &watchdog_timer_.sul, watchdog_tick,
						 static_cast<lws_usec_t>(watchdog_usec_ / 2));
	return true;
}

/* Main thread, which is the service thread from here on. */
void
Server::run()
{
	sd_notify(0, "READY=1\nSTATUS=serving");
	if (loop_)
	{
		/*
		 * lws 4.1's libev glue runs its timers (ours: auth, shutdown,
		 * watchdog; its own: pings, timeouts) when a socket event was handled
		 * or when the earliest timer armed so far is due, so a timer set for
		 * sooner than that one could wait for it on a quiet loop.  A periodic
		 * wake-up through lws_cancel_service() bounds that delay to
		 * kKickSeconds; it only runs drain_inbox() on an empty inbox.
		 */
		ev_timer_init(&kick_, kick_cb, kKickSeconds, kKickSeconds);
		kick_.data = this;
		ev_timer_start(loop_, &kick_);
		ev_run(loop_, 0); /* until shutdown_tick()'s ev_break() */
		ev_timer_stop(loop_, &kick_);
		return;
	}
	while (!done_)
	{
		if (lws_service(ctx_, 0) < 0)
			break;
	}
}

/* Service thread (libev timer): see run(). */
void
Server::kick_cb(struct ev_loop *, ev_timer *w, int)
{
	Server *s = static_cast<Server *>(w->data);
	lws_cancel_service(s->ctx_);
}

void
Server::destroy()
{
	if (ctx_)
	{
		lws_context_destroy(ctx_);
		ctx_ = nullptr;
		sh_->ctx = nullptr;
	}
	/* After the context: lws stops its watchers on this loop while it is destroyed. */
	if (loop_)
	{
		ev_loop_destroy(loop_);
		loop_ = nullptr;
	}
}

/* Service thread (lws timer): systemd's watchdog, proving the event loop still turns. */
void
Server::watchdog_tick(lws_sorted_usec_list_t *sul)
{
	Server *s = static_cast<Server *>(Timer::owner_of(sul));
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(s->ctx_, 0, &s->watchdog_timer_.sul, watchdog_tick,
					 static_cast<lws_usec_t>(s->watchdog_usec_ / 2));
}

int
Server::callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
				 size_t len)
{
	Pss *pss = static_cast<Pss *>(user);
	Session *s = pss ? pss->session : nullptr;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			return on_http(wsi, static_cast<const char *>(in));

		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return filter_upgrade(wsi, pss, static_cast<const char *>(in));

		case LWS_CALLBACK_ESTABLISHED:
			if (!s)
				return -1;
			on_established(wsi, s);
			return 0;

		case LWS_CALLBACK_RECEIVE:
		{
			if (!s || s->close_code)
				return 0;
			if (s->rx.size() + len > cfg_.max_message_bytes)
			{
				/* Too big for any message we accept: 1009, and the buffer never grows past the cap.
				 */
				s->rx.clear();
				LOG_WARN("message_too_big", "session=%llu user=%s",
						 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str());
				close_session(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
				return 0;
			}
			s->rx.append(static_cast<const char *>(in), len);
			if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
			{
				if (lws_frame_is_binary(wsi))
				{
					s->rx.clear();
					/* docs/protocol.md: anything but an auth or resume message before
					 * authentication, a binary frame included, is 1008 `unauthorized`. */
					if (!s->authed)
						auth_failed(s, "binary_message");
					return 0;
				}
				on_message(s);
				s->rx.clear();
			}
			return 0;
		}

		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (!s)
				return 0;
			return on_writeable(wsi, s);

		case LWS_CALLBACK_RECEIVE_PONG:
			/* lws restarts its validity timer on a pong; we note it to name a ping timeout. */
			if (s)
				s->last_valid = std::chrono::steady_clock::now();
			return 0;

		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			/* in: the peer's close payload (2-byte code, then the reason); lws answers it. */
			if (s && !s->peer_close_code)
			{
				const unsigned char *p = static_cast<const unsigned char *>(in);
				s->peer_close_code = len >= 2 ? (p[0] << 8 | p[1]) : LWS_CLOSE_STATUS_NO_STATUS;
				if (len > 2)
					s->peer_close_reason.assign(reinterpret_cast<const char *>(p) + 2,
												std::min<size_t>(len - 2, 123));
			}
			return 0;

		case LWS_CALLBACK_CLOSED:
		case LWS_CALLBACK_WSI_DESTROY:
			cleanup(pss);
			return 0;

		case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
			/* Another thread called lws_cancel_service(): frames, auth results or signals wait. */
			handle_flags();
			drain_inbox();
			return 0;

		default:
			break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---------------------------------------------------------------------------------------- */
/* Admission                                                                                 */

/*
 * An HTTP status on a connection that asked for an upgrade.  lws 4.1's
 * lws_return_http_status() answers such requests with "HTTP/1.0" (the request
 * version is only recorded on the plain-HTTP path), which strict WebSocket
 * clients refuse to read, so the status line is given explicitly; the headers
 * are still built by lws.
 */
void
Server::send_status(struct lws *wsi, int status, const char *reason)
{
	const char *phrase = "Error";
	switch (status)
	{
		case HTTP_STATUS_BAD_REQUEST:
			phrase = "Bad Request";
			break;
		case HTTP_STATUS_UNAUTHORIZED:
			phrase = "Unauthorized";
			break;
		case HTTP_STATUS_FORBIDDEN:
			phrase = "Forbidden";
			break;
		case HTTP_STATUS_NOT_FOUND:
			phrase = "Not Found";
			break;
		case HTTP_STATUS_SERVICE_UNAVAILABLE:
			phrase = "Service Unavailable";
			break;
		default:
			break;
	}
	std::string body = std::string(reason) + "\n";
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	char line[80];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s", status, phrase);
	if (lws_add_http_header_by_name(wsi, nullptr, reinterpret_cast<unsigned char *>(line), n, &p,
									end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
									 reinterpret_cast<const unsigned char *>("text/plain"), 10, &p,
									 end) ||
		lws_add_http_header_content_length(wsi, body.size(), &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
									 reinterpret_cast<const unsigned char *>("close"), 5, &p,
									 end) ||
		lws_finalize_http_header(wsi, &p, end) || static_cast<size_t>(end - p) < body.size())
		return;
	memcpy(p, body.data(), body.size());
	p += body.size();
	lws_write(wsi, start, static_cast<size_t>(p - start), LWS_WRITE_HTTP_HEADERS);
}

int
Server::reject(struct lws *wsi, int status, const char *reason, const std::string &peer,
			   const std::string &detail)
{
	if (status == HTTP_STATUS_UNAUTHORIZED)
		sh_->counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
	else
		sh_->counters.rejected_connections.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("ws_rejected", "status=%d reason=%s peer=%s%s%s", status, reason,
			 log_quote(peer).c_str(), detail.empty() ? "" : " ", detail.c_str());
	send_status(wsi, status, reason);
	/* Non-zero makes lws drop the connection after the status went out. */
	return -1;
}

/*
 * LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: the upgrade request's headers are
 * complete and no 101 has been sent, so every refusal here is an HTTP status
 * (ttyd's model).  Checks that need the database (SQL auth) cannot run here
 * without blocking the loop: such sockets are admitted "pending", hold a slot
 * against the total limit, and are closed with 1008 if the token is refused.
 */
int
Server::filter_upgrade(struct lws *wsi, Pss *pss, const char *protocols_header)
{
	char peer[64] = "";
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	std::string peer_s = peer;

	char uri[512] = "";
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || cfg_.ws_path != uri)
		return reject(wsi, HTTP_STATUS_NOT_FOUND, "path", peer_s, "path=" + log_quote(uri));
	if (shutting_down_)
		return reject(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting_down", peer_s);
	if (!pss)
		return reject(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "no_session_storage", peer_s);

	char origin[512] = "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) >= static_cast<int>(sizeof(origin)) ||
		lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
		return reject(wsi, HTTP_STATUS_FORBIDDEN, "origin", peer_s, "origin=too_long");
	if (!origin_allowed(cfg_.allowed_origins, origin))
		return reject(wsi, HTTP_STATUS_FORBIDDEN, "origin", peer_s, "origin=" + log_quote(origin));

	/* Resume point: ?last_id=N */
	static thread_local char arg[8400];
	std::optional<int64_t> last_id;
	if (const char *v = lws_get_urlarg_by_name(wsi, "last_id=", arg, sizeof(arg)))
	{
		last_id = parse_id(v);
		if (!last_id)
			return reject(wsi, HTTP_STATUS_BAD_REQUEST, "bad_last_id", peer_s);
	}

	/* Resume cursor: ?cursor=v1... (cursor.hpp); a malformed one is refused, not ignored. */
	std::optional<Cursor> cursor;
	if (const char *v = lws_get_urlarg_by_name(wsi, "cursor=", arg, sizeof(arg)))
	{
		std::string why;
		cursor = Cursor::parse(v, &why);
		if (!cursor)
			return reject(wsi, HTTP_STATUS_BAD_REQUEST, "bad_cursor", peer_s,
						  "detail=" + log_quote(why));
	}

	/* Credentials: ?token=, else an extra Sec-WebSocket-Protocol entry, else a first message. */
	std::string token;
	if (const char *v = lws_get_urlarg_by_name(wsi, "token=", arg, sizeof(arg)))
		token = v;
	else if (protocols_header)
		token = token_from_protocol_header(protocols_header, kProtocolName);
	std::string none_user;
	if (cfg_.auth == AuthMode::None)
		if (const char *v = lws_get_urlarg_by_name(wsi, "user=", arg, sizeof(arg)))
			none_user = v;

	auto s = std::make_unique<Session>(cfg_.send_queue_bytes);
	s->id = next_id_++;
	s->peer = peer_s;
	s->server = this;
	s->last_id = last_id;
	s->cursor = cursor;

	bool have_user = false;
	if (cfg_.auth == AuthMode::Jwt && !token.empty())
	{
		JwtResult r = verifier_->verify(token, time(nullptr));
		std::string why;
		if (!r.ok)
			return reject(wsi, HTTP_STATUS_UNAUTHORIZED, "jwt", peer_s, "detail=" + r.reason);
		/* One user key (core/user_key.hpp): "042" is not user 42, here or anywhere. */
		if (!sh_->user_key_acceptable(r.user, &why))
			return reject(wsi, HTTP_STATUS_UNAUTHORIZED, "jwt", peer_s,
						  "detail=" + why + " user=" + log_quote(r.user));
		s->user = r.user;
		have_user = true;
	}
	else if (cfg_.auth == AuthMode::None && !none_user.empty())
	{
		s->user = none_user;
		have_user = true;
	}
	else if (cfg_.auth == AuthMode::Sql && !token.empty())
		s->pending_token = token;

	if (have_user)
	{
		switch (groups_.admit(s->user))
		{
			case Admission::UserLimit:
				return reject(wsi, HTTP_STATUS_FORBIDDEN, "user_socket_limit", peer_s,
							  "user=" + log_quote(s->user));
			case Admission::TotalLimit:
				return reject(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "socket_limit", peer_s);
			case Admission::Ok:
				break;
		}
	}
	else
	{
		if (!groups_.reserve())
			return reject(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "socket_limit", peer_s);
		s->reserved = true;
	}

	pss->session = s.get();
	sessions_[s->id] = s.get();
	s.release();
	return 0;
}

void
Server::on_established(struct lws *wsi, Session *s)
{
	s->wsi = wsi;
	s->established = true;
	s->last_valid = std::chrono::steady_clock::now();
	sh_->counters.connections_total.fetch_add(1, std::memory_order_relaxed);
	LOG_DEBUG("ws_established", "session=%llu peer=%s", static_cast<unsigned long long>(s->id),
			  log_quote(s->peer).c_str());
	if (!s->user.empty())
	{
		authenticated(s, s->user, cfg_.auth == AuthMode::None ? "none" : "jwt");
		return;
	}
	if (!s->pending_token.empty())
	{
		s->auth_pending = true;
		Job j;
		j.type = Job::Type::AuthSql;
		j.session = s->id;
		j.token = std::move(s->pending_token);
		sh_->jobs.push(std::move(j));
	}
	/* Whether a token is pending in SQL or must come in a first message, auth has a deadline. */
	lws_sul_schedule(ctx_, 0, &s->auth_timer.sul, auth_deadline,
					 static_cast<lws_usec_t>(cfg_.auth_timeout_ms) * 1000);
}

/* Service thread (lws timer). */
void
Server::auth_deadline(lws_sorted_usec_list_t *sul)
{
	Session *s = static_cast<Session *>(Timer::owner_of(sul));
	if (!s->authed && !s->close_code)
		s->server->auth_failed(s, "auth_timeout");
}

void
Server::auth_failed(Session *s, const std::string &reason)
{
	sh_->counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("ws_auth_failed", "session=%llu peer=%s reason=%s",
			 static_cast<unsigned long long>(s->id), log_quote(s->peer).c_str(),
			 log_quote(reason).c_str());
	/* A malformed resume cursor is the client's bug, not a credential problem: say so. */
	std::string close_reason = reason == "auth_timeout" ? "authentication timeout" : "unauthorized";
	if (reason.find("cursor") != std::string::npos)
		close_reason = "bad cursor";
	close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, close_reason);
}

void
Server::authenticated(Session *s, const std::string &user, const char *how)
{
	std::string why;

	/*
	 * Every way in (a first-message token, the SQL query, none mode) gives a
	 * key that joins a group: it must be the one form live entries carry.
	 */
	if (!sh_->user_key_acceptable(user, &why))
	{
		LOG_WARN("ws_user_key_refused", "session=%llu user=%s auth=%s reason=%s",
				 static_cast<unsigned long long>(s->id), log_quote(user).c_str(), how, why.c_str());
		return auth_failed(s, why);
	}
	lws_sul_cancel(&s->auth_timer.sul);
	if (s->reserved)
	{
		groups_.unreserve();
		s->reserved = false;
	}
	Admission a = groups_.admit(user);
	if (a != Admission::Ok)
	{
		sh_->counters.rejected_connections.fetch_add(1, std::memory_order_relaxed);
		LOG_WARN("ws_rejected", "session=%llu reason=%s user=%s peer=%s",
				 static_cast<unsigned long long>(s->id),
				 a == Admission::UserLimit ? "user_socket_limit" : "socket_limit",
				 log_quote(user).c_str(), log_quote(s->peer).c_str());
		/* Known now (SQL auth), though not registered: the close line names the user too. */
		s->user = user;
		close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many sockets");
		return;
	}
	s->user = user;
	s->authed = true;
	s->registered = true;
	if (groups_.add(user, s))
		sh_->active.activate(user); /* before catch-up starts, so no row falls between the two */

	enqueue(s, make_hello_frame(user, sh_->epoch.load(), LWS_PRE), true);

	/*
	 * Before the reader's first position there is no live stream for this
	 * socket yet: rows committed from now until that position would be in
	 * neither a catch-up run now nor the live frames.  So a resume waits for
	 * the position (reader_ready()), and a socket without one gets resync
	 * `epoch` then.  The flag is read after activate(): once it is set, the
	 * reader delivers everything committed from here on.
	 */
	s->before_reader = !sh_->reader_positioned.load();
	std::string resume_note;
	if (s->last_id || s->cursor)
	{
		resume_note = s->cursor ? " cursor=" + log_quote(s->cursor->encode())
								: " last_id=" + std::to_string(*s->last_id);
		if (s->before_reader)
		{
			s->resume_waiting = true;
			lws_sul_schedule(ctx_, 0, &s->resume_timer.sul, resume_wait_deadline,
							 static_cast<lws_usec_t>(kResumeWaitMs) * LWS_US_PER_MS);
			resume_note += " waiting=reader";
		}
		else
			start_resume(s);
	}
	LOG_INFO("ws_open", "session=%llu user=%s auth=%s peer=%s sockets=%zu%s",
			 static_cast<unsigned long long>(s->id), log_quote(user).c_str(), how,
			 log_quote(s->peer).c_str(), groups_.sockets(), resume_note.c_str());
}

/* Start the replay of an authenticated socket's resume (the reader has its position). */
void
Server::start_resume(Session *s)
{
	std::string source = sh_->resume_source();
	if (source.empty())
	{
		/* No source to replay from: tell the client to refetch instead of pretending. */
		enqueue(s, make_resync_frame("no_resume_source", LWS_PRE), true);
		return;
	}
	/*
	 * Live frames are held from here on: the socket is in its group already,
	 * so every row committed from now on is also live.  The replay is fetched
	 * in pages and paced by the send queue (resume.hpp); the held frames get
	 * their own budget.
	 */
	ResumeLimits lim;
	lim.max_rows = static_cast<size_t>(cfg_.catchup_max_rows);
	lim.page_rows = std::min<size_t>(kCatchupPageRows, lim.max_rows);
	lim.held_bytes = cfg_.send_queue_bytes;
	lim.headroom = LWS_PRE;
	s->resume_source = source;
	if (s->cursor)
	{
		/*
		 * A cursor from another system or timeline (a failover that lost
		 * acknowledged rows gives their ids and xids to new rows): nothing in
		 * it can be trusted, so no catch-up; the client refetches.
		 */
		if (s->cursor->origin() != sh_->origin())
		{
			sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
			LOG_WARN("resync", "reason=cursor_foreign session=%llu cursor_origin=%s origin=%s",
					 static_cast<unsigned long long>(s->id), log_quote(s->cursor->origin()).c_str(),
					 log_quote(sh_->origin()).c_str());
			enqueue(s, make_resync_frame("cursor_foreign", LWS_PRE), true);
			return;
		}
		s->gate.begin_cursor(source, s->cursor->had, lim);
	}
	else
		s->gate.begin(source, *s->last_id, lim);
	request_catchup_page(s);
}

/*
 * ReaderReady: the reader took its first position (and resolved the resume
 * source).  Waiting resumes start now, so their catch-up query runs after that
 * position: a row committed before the query is in the catch-up, one committed
 * after the position is live, one in both is sent once (resume.hpp).  Sockets
 * that joined before it without a resume may have missed rows: resync `epoch`.
 */
void
Server::reader_ready()
{
	size_t resynced = 0;
	auto resync = make_resync_frame("epoch", LWS_PRE);
	for (auto &kv : sessions_)
	{
		Session *s = kv.second;
		bool before = s->before_reader;
		s->before_reader = false;
		if (!s->authed || s->close_code || !before)
			continue;
		if (s->resume_waiting)
		{
			s->resume_waiting = false;
			lws_sul_cancel(&s->resume_timer.sul);
			start_resume(s);
			continue;
		}
		enqueue(s, resync, true);
		resynced++;
	}
	if (resynced)
	{
		sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
		LOG_WARN("resync", "reason=epoch sockets=%zu", resynced);
	}
}

/*
 * Service thread (lws timer): a resume waited kResumeWaitMs for the reader's
 * first position.  The client refetches (resync `catchup_failed`); it still
 * gets resync `epoch` when the reader connects, as rows committed between its
 * refetch and that position are in neither.
 */
void
Server::resume_wait_deadline(lws_sorted_usec_list_t *sul)
{
	Session *s = static_cast<Session *>(Timer::owner_of(sul));
	if (!s->resume_waiting || s->close_code)
		return;
	s->resume_waiting = false;
	LOG_WARN("catchup_failed", "session=%llu user=%s error=\"database not reached yet\"",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str());
	s->server->sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
	s->server->enqueue(s, make_resync_frame("catchup_failed", LWS_PRE), true);
}

/* A complete client message. */
void
Server::on_message(Session *s)
{
	ClientMessage m = parse_client_message(s->rx);
	if (s->authed)
	{
		/* After auth only ping means anything; garbage is ignored, never fatal. */
		if (m.type == ClientMessage::Type::Ping)
		{
			auto f = std::make_shared<Frame>();
			f->headroom = LWS_PRE;
			f->buf.assign(LWS_PRE, '\0');
			f->buf += "{\"type\":\"pong\"}";
			enqueue(s, f, true);
		}
		else
			LOG_DEBUG("message_ignored", "session=%llu type=%d",
					  static_cast<unsigned long long>(s->id), static_cast<int>(m.type));
		return;
	}
	if (s->auth_pending)
		return; /* SQL auth in flight: wait for its answer */
	switch (m.type)
	{
		case ClientMessage::Type::Resume:
			if (m.last_id)
				s->last_id = m.last_id;
			if (m.cursor)
				s->cursor = Cursor::parse(*m.cursor);
			return;
		case ClientMessage::Type::Auth:
			break;
		case ClientMessage::Type::Ping:
		case ClientMessage::Type::Unknown:
		case ClientMessage::Type::Invalid:
			auth_failed(s, m.type == ClientMessage::Type::Invalid ? "bad_first_message: " + m.error
																  : "expected_auth_message");
			return;
	}
	if (m.last_id)
		s->last_id = m.last_id;
	if (m.cursor)
		s->cursor = Cursor::parse(*m.cursor); /* checked by parse_client_message */
	if (cfg_.auth == AuthMode::None)
	{
		if (!m.user || m.user->empty())
			return auth_failed(s, "missing_user");
		authenticated(s, *m.user, "none");
		return;
	}
	if (!m.token || m.token->empty())
		return auth_failed(s, "missing_token");
	if (cfg_.auth == AuthMode::Jwt)
	{
		JwtResult r = verifier_->verify(*m.token, time(nullptr));
		if (!r.ok)
			return auth_failed(s, "jwt: " + r.reason);
		authenticated(s, r.user, "jwt");
		return;
	}
	s->auth_pending = true;
	Job j;
	j.type = Job::Type::AuthSql;
	j.session = s->id;
	j.token = *m.token;
	sh_->jobs.push(std::move(j));
}

/* ---------------------------------------------------------------------------------------- */
/* Delivery                                                                                  */

void
Server::close_session(Session *s, int code, const std::string &reason)
{
	if (s->close_code)
		return;
	s->close_code = code;
	s->close_reason = reason.substr(0, 100);
	s->queue.clear();
	if (s->wsi && s->established)
		lws_callback_on_writable(s->wsi);
}

/* A socket over its bound (send queue, or live frames held during a replay): 1008. */
void
Server::slow_client(Session *s, const char *during)
{
	sh_->counters.slow_client_closes.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("slow_client",
			 "session=%llu user=%s during=%s queued_bytes=%zu held_bytes=%zu limit=%zu",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), during,
			 s->queue.bytes(), s->gate.held_bytes(), s->queue.limit());
	close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
}

/*
 * Queue a frame on one socket.  Frames of a resuming socket go through its
 * gate (held until the replay ends, duplicates dropped); bypass_gate is for
 * control frames (hello, resync, pong) that are not part of the row stream.
 */
void
Server::enqueue(Session *s, const FramePtr &f, bool bypass_gate)
{
	if (s->close_code || !s->established)
		return;
	if (!bypass_gate)
	{
		switch (s->gate.on_live(f))
		{
			case ResumeGate::Live::Drop:
				return;
			case ResumeGate::Live::Overflow:
				slow_client(s, "catchup");
				return;
			case ResumeGate::Live::Held:
				/* Released in order once the replay is out (now, if it already is). */
				feed_resume(s);
				if (!s->queue.empty())
					lws_callback_on_writable(s->wsi);
				return;
			case ResumeGate::Live::Send:
				break;
		}
	}
	if (s->queue.push(f) == SendQueue::Push::Overflow)
	{
		/* Over its bound: close 1008 so the client resumes from its last id; others are unaffected.
		 */
		slow_client(s, "live");
		return;
	}
	lws_callback_on_writable(s->wsi);
}

/* Ask a worker for the resume's next catch-up page, if the gate wants one now. */
void
Server::request_catchup_page(Session *s)
{
	std::optional<ResumeGate::PageRequest> p = s->gate.next_page();
	if (!p)
		return;
	Job j;
	j.type = Job::Type::Catchup;
	j.session = s->id;
	j.source = s->resume_source;
	j.user = s->user;
	j.after_id = p->after_id;
	j.max_rows = p->max_rows;
	j.count_known = s->resume_count_known;
	j.unread = s->resume_unread;
	j.cursor = s->cursor;
	sh_->jobs.push(std::move(j));
}

/*
 * Move the resume's frames (replayed rows, resync trailer, held live frames)
 * into the send queue at the pace the socket drains (resume.hpp), and fetch
 * the next page when the gate runs low.  Called when a page arrives and on
 * every SERVER_WRITEABLE of a resuming socket.
 */
void
Server::feed_resume(Session *s)
{
	if (!s->gate.holding() || s->close_code)
		return;
	while (FramePtr f = s->gate.pull(s->queue.bytes(), s->queue.limit()))
	{
		if (f->kind == FrameKind::Resync)
			sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
		if (s->queue.push(std::move(f)) == SendQueue::Push::Overflow)
		{
			/* Only if a SIGHUP shrank the bound below one frame. */
			slow_client(s, "catchup");
			return;
		}
	}
	if (s->gate.holding())
	{
		request_catchup_page(s);
		return;
	}
	ResumeGate::End end = s->gate.end();
	LOG_INFO("ws_resumed", "session=%llu user=%s rows=%zu truncated=%d failed=%d",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), s->gate.replayed(),
			 end == ResumeGate::End::Truncated, end == ResumeGate::End::Failed);
}

/*
 * LWS_CALLBACK_SERVER_WRITEABLE: write queued frames while the kernel takes
 * them (lws_send_pipe_choked), then ask to be called again.  Each frame's
 * buffer has LWS_PRE bytes in front for lws's framing header.
 */
int
Server::on_writeable(struct lws *wsi, Session *s)
{
	if (s->close_code)
	{
		/*
		 * Hand lws our close frame once and return -1: lws sends it and waits
		 * (up to 5 s) for the peer's close before it drops TCP, the closing
		 * handshake of RFC 6455 5.5.1.  A later writeable callback while it
		 * waits must not return -1 again: lws takes a second close request in
		 * LRS_AWAITING_CLOSE_ACK as "the polite way failed" and kills the
		 * connection at once (lib/core-net/close.c, __lws_close_free_wsi).
		 */
		if (s->close_requested)
			return 0;
		s->close_requested = true;
		lws_close_reason(wsi, static_cast<enum lws_close_status>(s->close_code),
						 reinterpret_cast<unsigned char *>(&s->close_reason[0]),
						 s->close_reason.size());
		return -1;
	}
	for (;;)
	{
		if (s->gate.holding())
			feed_resume(s);
		if (s->queue.empty() || s->close_code)
			break;
		const FramePtr &f = s->queue.front();
		size_t n = f->size();
		int m = lws_write(wsi, reinterpret_cast<unsigned char *>(f->writable_payload()), n,
						  LWS_WRITE_TEXT);
		if (m < static_cast<int>(n))
		{
			LOG_WARN("write_failed", "session=%llu user=%s", static_cast<unsigned long long>(s->id),
					 log_quote(s->user).c_str());
			s->drop_reason = "write failed";
			return -1;
		}
		sh_->counters.frames_sent.fetch_add(1, std::memory_order_relaxed);
		sh_->counters.bytes_sent.fetch_add(n, std::memory_order_relaxed);
		s->queue.pop();
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (s->close_code || !s->queue.empty())
		lws_callback_on_writable(wsi);
	return 0;
}

/* A catch-up page (or its failure) for a resuming socket. */
void
Server::on_catchup(Session *s, Event &e)
{
	if (e.failed)
		s->gate.on_page_failed();
	else
	{
		if (!e.rows.empty())
		{
			s->resume_count_known = true;
			s->resume_unread = e.unread;
		}
		/* The next page's frames list these too (the worker stamped this page the same way). */
		if (s->cursor)
			for (const auto &r : e.rows)
				s->cursor->add_had(r.first);
		s->gate.on_page(std::move(e.rows), e.more);
	}
	feed_resume(s);
	if (!s->queue.empty())
		lws_callback_on_writable(s->wsi);
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: everything the database threads handed over. */
void
Server::drain_inbox()
{
	for (auto &e : sh_->inbox.take())
		backlog_.push_back(std::move(e));
	/*
	 * Work in slices: a burst (1000 rows of a few kB for one user) queued all
	 * at once would overflow the send queues of perfectly healthy clients
	 * before lws had a chance to write anything.  After a slice we wake
	 * ourselves again, so lws services writeable sockets between slices.
	 */
	size_t budget = 64;
	size_t byte_budget = cfg_.send_queue_bytes / 4; /* one slice never fills a queue on its own */
	while (!backlog_.empty() && budget-- > 0)
	{
		Event e = std::move(backlog_.front());
		backlog_.pop_front();
		size_t bytes = e.frame ? e.frame->size() : 0;
		byte_budget = bytes >= byte_budget ? 0 : byte_budget - bytes;
		if (byte_budget == 0)
			budget = 0;
		switch (e.type)
		{
			case Event::Type::Deliver:
			{
				const std::vector<Session *> *g = groups_.find(e.user);
				if (!g)
					break;
				/* Copy: enqueue may close a socket, but never removes it from the group here. */
				for (Session *s : *g)
					enqueue(s, e.frame);
				break;
			}
			case Event::Type::Broadcast:
				groups_.for_each(
					[&](const std::string &, Session *s) { enqueue(s, e.frame, true); });
				break;
			case Event::Type::AuthResult:
			{
				auto it = sessions_.find(e.session);
				if (it == sessions_.end())
					break; /* closed meanwhile */
				Session *s = it->second;
				s->auth_pending = false;
				if (s->close_code)
					break;
				if (e.ok)
					authenticated(s, e.user, "sql");
				else if (e.unavailable)
				{
					LOG_WARN("ws_auth_unavailable", "session=%llu peer=%s",
							 static_cast<unsigned long long>(s->id), log_quote(s->peer).c_str());
					close_session(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "database unavailable");
				}
				else
					auth_failed(s, "sql: " + e.reason);
				break;
			}
			case Event::Type::CatchupResult:
			{
				auto it = sessions_.find(e.session);
				if (it != sessions_.end() && !it->second->close_code)
					on_catchup(it->second, e);
				break;
			}
			case Event::Type::ReaderReady:
				reader_ready();
				break;
		}
	}
	if (!backlog_.empty())
		lws_cancel_service(ctx_);
}

/* LWS_CALLBACK_CLOSED and LWS_CALLBACK_WSI_DESTROY (whichever comes first; the second is a no-op).
 */
void
Server::cleanup(Pss *pss)
{
	if (!pss || !pss->session)
		return;
	Session *s = pss->session;
	pss->session = nullptr;
	lws_sul_cancel(&s->auth_timer.sul);
	lws_sul_cancel(&s->resume_timer.sul);
	if (s->registered && groups_.remove(s->user, s))
		sh_->active.deactivate(s->user);
	if (s->reserved)
		groups_.unreserve();
	sessions_.erase(s->id);
	if (s->established)
	{
		/*
		 * Who ended it and why.  by=server: our close frame (code, reason);
		 * by=peer: the peer's close frame; by=none: TCP went without a close
		 * frame (code 1006, RFC 6455 7.1.5), either because the peer stopped
		 * answering pings (lws's validity timeout: nothing else is silent for
		 * 2 x ping_interval_s) or because the connection was lost.
		 */
		const char *by = "server";
		int code = s->close_code;
		std::string reason = s->close_reason;
		if (!code && s->peer_close_code)
		{
			by = "peer";
			code = s->peer_close_code;
			reason = s->peer_close_reason;
		}
		else if (!code)
		{
			by = "none";
			code = LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
			auto silent = std::chrono::steady_clock::now() - s->last_valid;
			if (!s->drop_reason.empty())
				reason = s->drop_reason;
			else if (silent >= std::chrono::seconds(2 * cfg_.ping_interval_s) -
								   std::chrono::milliseconds(500))
				reason = "ping timeout";
			else
				reason = "connection lost";
		}
		LOG_INFO("ws_close", "session=%llu user=%s by=%s code=%d reason=%s sockets=%zu",
				 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), by, code,
				 log_quote(reason).c_str(), groups_.sockets());
	}
	delete s;
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP endpoints                                                                            */

int
Server::http_reply(struct lws *wsi, unsigned int status, const char *ctype, const std::string &body)
{
	std::vector<unsigned char> buf(LWS_PRE + 1024 + body.size());
	unsigned char *start = buf.data() + LWS_PRE, *p = start, *end = buf.data() + buf.size() - 1;
	if (lws_add_http_common_headers(wsi, status, ctype, body.size(), &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
									 reinterpret_cast<const unsigned char *>("no-store"), 8, &p,
									 end) ||
		lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	memcpy(start, body.data(), body.size());
	if (lws_write(wsi, start, body.size(), LWS_WRITE_HTTP_FINAL) != static_cast<int>(body.size()))
		return 1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

std::string
Server::metrics_text()
{
	Gauges g;
	g.sockets = groups_.sockets();
	g.users = groups_.users();
	auto now = std::chrono::steady_clock::now();
	std::chrono::steady_clock::duration oldest{};
	for (const auto &kv : sessions_)
	{
		g.queued_bytes += kv.second->queue.bytes();
		oldest = std::max(oldest, kv.second->queue.oldest_age(now));
	}
	g.queue_lag_seconds = std::chrono::duration<double>(oldest).count();
	return render_metrics(sh_->counters, g);
}

/* LWS_CALLBACK_HTTP: a plain HTTP request (no upgrade); in is the path. */
int
Server::on_http(struct lws *wsi, const char *uri)
{
	std::string path = uri ? uri : "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
	if (path == "/healthz")
	{
		if (shutting_down_)
			return http_reply(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain", "stopping\n");
		if (!sh_->counters.db_up.load())
			return http_reply(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain",
							  "database unreachable\n");
		return http_reply(wsi, HTTP_STATUS_OK, "text/plain", "ok\n");
	}
	if (path == "/metrics")
		return http_reply(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", metrics_text());
	if (path == cfg_.ws_path)
		return http_reply(wsi, HTTP_STATUS_BAD_REQUEST, "text/plain",
						  "WebSocket upgrade required\n");
	return http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Signals: reload and shutdown                                                              */

void
Server::handle_flags()
{
	if (flags_->stop.load() && !shutting_down_)
		begin_shutdown();
	if (flags_->reload.exchange(false))
		reload();
}

/*
 * SIGHUP: re-read file + environment (+ the original flags, which still win)
 * and apply what can change without re-binding or reconnecting: log level,
 * JWT keys and claims, limits, origins, auth deadline.  A bad file keeps the
 * running configuration.
 */
void
Server::reload()
{
	sd_notify(0, "RELOADING=1");
	Config next;
	try
	{
		next = load_config(cmd_, [](const char *n) { return getenv(n); });
	}
	catch (const ConfigError &e)
	{
		LOG_ERROR("reload_failed", "key=%s error=%s", e.key.c_str(), log_quote(e.what()).c_str());
		sd_notify(0, "READY=1\nSTATUS=serving (reload failed, previous configuration kept)");
		return;
	}
	if (next.auth != cfg_.auth || next.listen_address != cfg_.listen_address ||
		next.port != cfg_.port || next.database_url != cfg_.database_url)
		LOG_WARN("reload_partial",
				 "hint=\"auth, listen_address, port and database_url need a restart\"");
	set_log_level(next.log_level);
	cfg_.log_level = next.log_level;
	cfg_.jwt_alg = next.jwt_alg;
	cfg_.jwt_key = next.jwt_key;
	cfg_.jwt_issuer = next.jwt_issuer;
	cfg_.jwt_audience = next.jwt_audience;
	cfg_.jwt_leeway_s = next.jwt_leeway_s;
	cfg_.allowed_origins = next.allowed_origins;
	cfg_.auth_timeout_ms = next.auth_timeout_ms;
	cfg_.max_sockets = next.max_sockets;
	cfg_.max_sockets_per_user = next.max_sockets_per_user;
	cfg_.send_queue_bytes = next.send_queue_bytes;
	cfg_.max_message_bytes = next.max_message_bytes;
	if (next.auth == cfg_.auth)
		rebuild_verifier();
	groups_.set_limits(static_cast<size_t>(cfg_.max_sockets),
					   static_cast<size_t>(cfg_.max_sockets_per_user));
	for (auto &kv : sessions_)
		kv.second->queue.set_limit(cfg_.send_queue_bytes);
	sd_notify(0, "READY=1\nSTATUS=serving (reloaded)");
	LOG_INFO("reloaded", "log_level=%s max_sockets=%d max_sockets_per_user=%d send_queue_bytes=%zu",
			 log_level_name(cfg_.log_level), cfg_.max_sockets, cfg_.max_sockets_per_user,
			 cfg_.send_queue_bytes);
}

/* SIGTERM/SIGINT: close every socket with 1001, then leave the loop within ~1.5 s. */
void
Server::begin_shutdown()
{
	shutting_down_ = true;
	sd_notify(0, "STOPPING=1");
	LOG_INFO("shutdown", "sockets=%zu", sessions_.size());
	for (auto &kv : sessions_)
	{
		Session *s = kv.second;
		if (s->established)
			close_session(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
	}
	shutdown_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
	lws_sul_schedule(ctx_, 0, &shutdown_timer_.sul, shutdown_tick, 20 * LWS_US_PER_MS);
}

/* Service thread (lws timer): done when every socket is gone or the deadline passed. */
void
Server::shutdown_tick(lws_sorted_usec_list_t *sul)
{
	Server *s = static_cast<Server *>(Timer::owner_of(sul));
	bool established = false;
	for (auto &kv : s->sessions_)
		established = established || kv.second->established;
	if (!established || std::chrono::steady_clock::now() >= s->shutdown_deadline_)
	{
		s->done_ = true;
		if (s->loop_)
			ev_break(s->loop_, EVBREAK_ALL);
		else
			lws_cancel_service(s->ctx_);
		return;
	}
	lws_sul_schedule(s->ctx_, 0, &s->shutdown_timer_.sul, shutdown_tick, 20 * LWS_US_PER_MS);
}

/* ---------------------------------------------------------------------------------------- */

Server *
server_create(Shared *shared, const CommandLine &cmd, ControlFlags *flags)
{
	shared->headroom = LWS_PRE;
	auto s = std::make_unique<Server>(shared, cmd, flags);
	if (!s->create())
		return nullptr;
	return s.release();
}

void
server_run(Server *server)
{
	server->run();
}

void
server_destroy(Server *server)
{
	server->destroy();
	delete server;
}

} // namespace livenotify
