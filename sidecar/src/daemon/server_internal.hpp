/*
 * server_internal.hpp: what the files of the lws side share (server.cpp,
 * admission.cpp, catchup.cpp, delivery.cpp, http_endpoints.cpp, control.cpp).
 *
 * Every function of class Server runs on the lws service thread unless its
 * comment says otherwise: lws is not thread-safe (LWS_MAX_SMP is 1 in
 * Debian's build) and only this thread may touch a wsi.  Other threads reach
 * it through Shared::inbox + lws_cancel_service() and ControlFlags.
 */
#pragma once

#include "server.hpp"

#include "address_limits.hpp"
#include "cursor.hpp"
#include "fd_budget.hpp"
#include "jwt_verify.hpp"
#include "memory_trim.hpp"
#include "preauth.hpp"
#include "rate_limit.hpp"
#include "resume.hpp"
#include "send_queue.hpp"
#include "session_state.hpp"

#include <ev.h>
#include <libwebsockets.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace livenotify
{

static const char *const kProtocolName = "livenotify.v1";
/* Per-address limits (admission.cpp); lws 4.1's http_status enum has no 429. */
static const int kHttpTooManyRequests = 429;
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
/* "Try Again Later" (IANA WebSocket close code registry; lws 4.1 has no name for it). */
static const int kCloseTryAgainLater = 1013;
/*
 * malloc_trim once the send queues hold this much less than their peak since
 * the last trim, at most once per kTrimIntervalMs (core/memory_trim.hpp).
 */
static const size_t kTrimAfterBytes = 4 << 20;
static const int kTrimIntervalMs = 1000;

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

class Server;

/*
 * How a session is counted in the per-address limits (admission.cpp), like
 * SessionSlot for the socket limits: taken at admission, Pending until it
 * authenticates, given back once at cleanup.
 */
enum class AddressSlot
{
	None,
	Pending, /* a socket and a pending one of its client address */
	Socket,	 /* a socket of its client address */
};

/*
 * One WebSocket connection; lives from admission to close.  Where it is in
 * its life is `state` alone (core/session_state.hpp), changed only by
 * Server::advance().
 */
struct Session
{
	uint64_t id = 0;
	struct lws *wsi = nullptr;
	std::string peer; /* the TCP peer */
	std::string
		client_addr; /* the client address (peer, or X-Forwarded-For from a trusted proxy) */
	AddressSlot addr_slot = AddressSlot::None; /* its count in Server::address_limits_ */
	std::string user;
	SessionState state = SessionState::Upgrading;
	SessionSlot slot = SessionSlot::None;	   /* the limit slot it holds (admission.cpp) */
	ReaderWait reader_wait = ReaderWait::None; /* owed at the reader's first position */
	std::string pending_token;				   /* token to check at ESTABLISHED (SQL mode) */
	std::optional<int64_t> last_id;
	std::optional<Cursor>
		cursor; /* resume cursor (wins over last_id); its had list grows with the replay */
	SendQueue queue;
	ResumeGate gate;
	std::string resume_source;		 /* the source this resume replays (fixed for all its pages) */
	bool resume_count_known = false; /* the count for the replayed rows was queried */
	std::optional<int64_t> resume_unread; /* that count, passed to the next page's job */
	int close_code = 0;					  /* set when we close: our close frame's code */
	std::string close_reason;
	int peer_close_code = 0; /* the peer's close frame (1005: it had no code) */
	std::string peer_close_reason;
	std::string drop_reason; /* why the connection went without a close frame, when we know */
	std::chrono::steady_clock::time_point last_valid; /* established, or the last pong */
	std::string rx;
	TokenBucket messages; /* client_message_rate (on_message) */
	/* Cleared when the socket closes: its queued catch-up jobs are dropped (shared.hpp, Job). */
	std::shared_ptr<std::atomic<bool>> live = std::make_shared<std::atomic<bool>>(true);
	Timer auth_timer;
	Timer resume_timer;	  /* bound of reader_wait == Resume */
	double token_exp = 0; /* the JWT's exp (epoch seconds); 0: the credential does not expire */
	Timer expiry_timer;	  /* closes the socket 4001 at token_exp + leeway (token_expiry.cpp) */
	Server *server = nullptr;

	Session(size_t limit, QueueTotals *totals, double message_rate, double message_burst)
		: queue(limit, totals),
		  messages(message_rate, message_burst, std::chrono::steady_clock::now())
	{
		memset(&expiry_timer, 0, sizeof(expiry_timer));
		expiry_timer.owner = this;
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

class Server
{
public:
	Server(Shared *sh, const CommandLine &cmd, ControlFlags *flags)
		: sh_(sh), cmd_(cmd), flags_(flags), cfg_(sh->cfg),
		  groups_(static_cast<size_t>(cfg_.max_sockets),
				  static_cast<size_t>(cfg_.max_sockets_per_user)),
		  preauth_(static_cast<size_t>(cfg_.max_pending_auth)),
		  resumes_(cfg_.resume_rate, cfg_.resume_burst),
		  trim_(kTrimAfterBytes, std::chrono::milliseconds(kTrimIntervalMs)),
		  address_limits_(address_socket_limit(cfg_),
						  static_cast<size_t>(cfg_.max_pending_auth_per_address)),
		  fd_plan_(sh->fd_plan), conn_limits_(address_socket_limit(cfg_), 1)
	{
		rebuild_verifier();
	}

	bool create();
	void run();
	void destroy();

	int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
				 size_t len);
	/* The metrics listener's callbacks (http_endpoints.cpp). */
	int metrics_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
						 size_t len);

private:
	/* The session's lifecycle (core/session_state.hpp): the one place its state changes. */
	bool advance(Session *s, SessionEvent ev);

	/* admission.cpp: admission (FILTER_PROTOCOL_CONNECTION), authentication, limits */
	int filter_upgrade(struct lws *wsi, Pss *pss, const char *protocols_header);
	void send_status(struct lws *wsi, int status, const char *reason);
	int reject(struct lws *wsi, int status, const char *reason, const std::string &peer,
			   const std::string &detail = "");
	void on_established(struct lws *wsi, Session *s);
	void authenticated(Session *s, const std::string &user, const char *how);
	void auth_failed(Session *s, const std::string &reason);
	void on_message(Session *s);
	void on_receive(struct lws *wsi, Session *s, const void *in, size_t len);
	static void auth_deadline(lws_sorted_usec_list_t *sul);
	void on_auth_result(Session *s, const Event &e);
	void release_slot(Session *s);
	bool resume_allowed(Session *s);
	void evict_pending(uint64_t id);
	void cleanup(Pss *pss);
	static size_t address_socket_limit(const Config &c)
	{
		return c.max_sockets_per_address > 0 ? static_cast<size_t>(c.max_sockets_per_address)
											 : SIZE_MAX;
	}

	/* listener.cpp: the listening socket (ours, watched by lws) and the accept loop */
	bool open_listener();
	bool watch_listener();
	void on_listen_readable();
	void connection_gone(struct lws *wsi);
	void pause_accepting(int64_t pause_ms, const char *why, uint64_t failures);
	static void accept_resume(lws_sorted_usec_list_t *sul);

	/* catchup.cpp: the resume of an authenticated socket (paged catch-up, the reader gate) */
	void start_resume(Session *s);
	void reader_ready();
	static void resume_wait_deadline(lws_sorted_usec_list_t *sul);
	void feed_resume(Session *s);
	void request_catchup_page(Session *s);
	void on_catchup(Session *s, Event &e);

	/* delivery.cpp: delivery and backpressure */
	void enqueue(Session *s, const FramePtr &f, bool bypass_gate = false, bool direct = false);
	bool write_now(Session *s, const FramePtr &f);
	void slow_client(Session *s, const char *during);
	void close_session(Session *s, int code, const std::string &reason);
	int on_writeable(struct lws *wsi, Session *s);
	void drain_inbox();
	void send_pong(Session *s);
	static void trim_tick(lws_sorted_usec_list_t *sul);

	/* http_endpoints.cpp: plain HTTP on both listeners, the upgrade's HTTP checks */
	int http_reply(struct lws *wsi, unsigned int status, const char *ctype, const std::string &body,
				   const char *extra_name = nullptr, const char *extra_value = nullptr);
	int on_http(struct lws *wsi, const char *uri);
	int health_reply(struct lws *wsi);
	int confirm_upgrade(struct lws *wsi, const char *upgrade);
	bool create_metrics_listener();
	int on_metrics_http(struct lws *wsi, const char *uri);
	std::string metrics_text();

	/* token_expiry.cpp: a JWT socket closes 4001 when its token expires */
	void arm_token_expiry(Session *s);
	static void token_expiry(lws_sorted_usec_list_t *sul);

	/* control.cpp: reload and shutdown */
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
	PreAuthBudget preauth_; /* sockets not authenticated yet (admission.cpp) */
	RateLimiter resumes_;	/* resume_rate per user (admission.cpp) */
	size_t resume_limited_since_log_ = 0;
	std::chrono::steady_clock::time_point resume_limited_logged_{};
	QueueTotals queue_totals_; /* every session's send queue adds to it (send_queue.hpp) */
	TrimPolicy trim_;		   /* malloc_trim after bursts (delivery.cpp) */
	Timer trim_timer_;
	FramePtr pong_; /* one pong frame shared by every socket (immutable once built) */
	AddressLimits address_limits_; /* sockets per client address (admission.cpp) */
	FdPlan fd_plan_;			   /* what RLIMIT_NOFILE allows (main.cpp, listener.cpp) */
	int listen_fd_ = -1;
	struct lws *listen_wsi_ = nullptr; /* lws's raw-file wsi of listen_fd_ */
	struct lws_vhost *vhost_ = nullptr;
	Timer accept_timer_; /* end of an accept pause */
	bool accept_paused_ = false;
	AcceptBackoff accept_backoff_;
	uint64_t live_wsi_ = 0; /* lws connections on our vhost (WSI_CREATE - WSI_DESTROY) */
	/* TCP connections per peer address (not trusted proxies), counted at accept (listener.cpp). */
	AddressLimits conn_limits_;
	std::unordered_map<struct lws *, std::string> conn_addr_;
	AcceptBackoff conn_refused_log_; /* only its once-per-interval log decision */
	std::unordered_map<uint64_t, Session *> sessions_;
	std::deque<Event> backlog_; /* inbox events not handled yet (drain_inbox works in slices) */
	uint64_t next_id_ = 1;
	struct lws_context *ctx_ = nullptr;
	struct lws_protocols protocols_[2];
	struct lws_protocols metrics_protocols_[2]; /* the metrics listener's (http_endpoints.cpp) */
	struct lws_vhost *metrics_vhost_ = nullptr;
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

} // namespace livenotify
