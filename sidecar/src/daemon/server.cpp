/*
 * server.cpp: the lws context, its event loop and the callback dispatch.
 *
 * One lws context with two vhosts: the public listener (one protocol,
 * "livenotify.v1", serving the WebSocket endpoint and /healthz) and the
 * metrics listener (http_endpoints.cpp).  The concerns live
 * in their own files: admission.cpp (upgrade filter, authentication,
 * limits), catchup.cpp (resume), delivery.cpp (queues, backpressure,
 * writing), http_endpoints.cpp, control.cpp (reload, shutdown).  A session's
 * lifecycle is core/session_state.hpp.  Service thread only, unless a
 * comment says otherwise (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "log.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace livenotify
{

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

/*
 * Apply a lifecycle event (core/session_state.hpp): true if it changed the
 * state.  The only place a session's state is written.
 */
bool
Server::advance(Session *s, SessionEvent ev)
{
	Transition t = session_transition(s->state, ev);
	if (!t.applied)
	{
		LOG_DEBUG("session_event_ignored", "session=%llu state=%s event=%s",
				  static_cast<unsigned long long>(s->id), session_state_name(s->state),
				  session_event_name(ev));
		return false;
	}
	s->state = t.to;
	return true;
}

void
Server::rebuild_verifier()
{
	if (cfg_.auth == AuthMode::Jwt)
		verifier_ = std::make_unique<JwtVerifier>(
			JwtSettings{cfg_.jwt_alg, cfg_.jwt_key, cfg_.jwt_issuer, cfg_.jwt_audience,
						cfg_.jwt_leeway_s, cfg_.jwt_max_lifetime_s});
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
	 * lws sends at most this much per write, else rx_buffer_size: a frame
	 * bigger than that would be sent in pieces through POLLOUT rounds
	 * (lib/core-net/output.c).  64 kB holds a frame of the default
	 * livenotify.max_payload (8 kB) many times over.
	 */
	protocols_[0].tx_packet_size = 65536;

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

	/* Bound before the context and READY=1: a bad address is an error now (listener.cpp). */
	if (!open_listener())
		return false;

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	/* No lws listener: the vhost adopts what our listener accepts (listener.cpp). */
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols_;
	info.user = this;
	info.retry_and_idle_policy = &retry_;
	info.max_http_header_data = 8192; /* a JWT in ?token= must fit */
	/*
	 * The upgrade deadline: lws closes a connection that has not sent a
	 * complete request within timeout_secs of its adoption
	 * (PENDING_TIMEOUT_ESTABLISH_WITH_SERVER, lib/core-net/adopt.c) or holds
	 * its header buffer idle longer than timeout_secs_ah_idle
	 * (PENDING_TIMEOUT_HOLDING_AH).  Measured: a connection sending one header
	 * byte a second is closed at this deadline (test_admission.py).
	 */
	info.timeout_secs = static_cast<unsigned int>(cfg_.upgrade_timeout_s);
	info.timeout_secs_ah_idle = static_cast<unsigned int>(cfg_.upgrade_timeout_s);
	/*
	 * 0: lws sizes its tables for RLIMIT_NOFILE and looks sockets up by fd
	 * (a smaller limit makes lws 4.1 search its table linearly, unix-fds.c).
	 * How many we accept is bounded by the listener (fd_budget.hpp).
	 */
	info.fd_limit_per_thread = 0;
	/* Invalid UTF-8 in a text frame closes that socket inside lws; it never reaches us. */
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;

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
		LOG_ERROR("startup_failed", "error=%s", log_quote("lws_create_context failed").c_str());
		close(listen_fd_);
		listen_fd_ = -1;
		return false;
	}
	if (!watch_listener())
		return false;
	sh_->ctx = ctx_;
	if (!create_metrics_listener())
		return false;
	LOG_INFO("listening", "address=%s port=%d path=%s auth=%s",
			 log_quote(cfg_.listen_address).c_str(), cfg_.port, log_quote(cfg_.ws_path).c_str(),
			 auth_mode_name(cfg_.auth));

	memset(&shutdown_timer_, 0, sizeof(shutdown_timer_));
	memset(&watchdog_timer_, 0, sizeof(watchdog_timer_));
	memset(&trim_timer_, 0, sizeof(trim_timer_));
	shutdown_timer_.owner = this;
	watchdog_timer_.owner = this;
	trim_timer_.owner = this;
	lws_sul_schedule(ctx_, 0, &trim_timer_.sul, trim_tick,
					 static_cast<lws_usec_t>(kTrimIntervalMs) * LWS_US_PER_MS);
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

		case LWS_CALLBACK_RAW_ADOPT:
		case LWS_CALLBACK_RAW_RX:
			/*
			 * A CONNECT request: lws 4.1 makes it a raw socket with no timeout
			 * (lib/roles/http/server/server.c, lws_http_to_fallback).  We serve
			 * no raw protocol: close it.
			 */
			return -1;

		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
			/* Before lws acts on any Upgrade header: RFC 6455 checks (http_endpoints.cpp). */
			return confirm_upgrade(wsi, static_cast<const char *>(in));

		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return filter_upgrade(wsi, pss, static_cast<const char *>(in));

		case LWS_CALLBACK_ESTABLISHED:
			if (!s)
				return -1;
			on_established(wsi, s);
			return 0;

		case LWS_CALLBACK_RECEIVE:
			if (s)
				on_receive(wsi, s, in, len);
			return 0;

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

		case LWS_CALLBACK_RAW_RX_FILE:
			if (wsi == listen_wsi_)
				on_listen_readable();
			return 0;

		case LWS_CALLBACK_RAW_CLOSE_FILE:
			if (wsi == listen_wsi_)
				listen_wsi_ = nullptr; /* the context is going: lws closed listen_fd_ */
			return 0;

		case LWS_CALLBACK_WSI_CREATE:
			live_wsi_++;
			return 0;

		case LWS_CALLBACK_WSI_DESTROY:
			if (live_wsi_ > 0)
				live_wsi_--;
			connection_gone(wsi);
			cleanup(pss);
			return 0;

		case LWS_CALLBACK_CLOSED:
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

Server *
server_create(Shared *shared, const CommandLine &cmd, ControlFlags *flags)
{
	shared->headroom = LWS_PRE;
	auto s = std::make_unique<Server>(shared, cmd, flags);
	if (!s->create())
	{
		/* A failed start (a listener that cannot bind) frees what lws had made, too. */
		s->destroy();
		return nullptr;
	}
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
