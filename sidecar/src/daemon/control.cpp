/*
 * control.cpp: what the signal thread asks for (ControlFlags): SIGHUP reload,
 * SIGTERM/SIGINT shutdown; and systemd's watchdog.
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "log.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>

namespace livenotify
{

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
		next.port != cfg_.port || next.database_url != cfg_.database_url ||
		next.catchup_queue_max != cfg_.catchup_queue_max ||
		next.upgrade_timeout_s != cfg_.upgrade_timeout_s ||
		next.metrics_listen != cfg_.metrics_listen)
		LOG_WARN("reload_partial",
				 "hint=\"auth, listen_address, port, metrics_listen, database_url, "
				 "catchup_queue_max and upgrade_timeout_s need a restart\"");
	set_log_level(next.log_level);
	cfg_.log_level = next.log_level;
	cfg_.jwt_alg = next.jwt_alg;
	cfg_.jwt_key = next.jwt_key;
	cfg_.jwt_issuer = next.jwt_issuer;
	cfg_.jwt_audience = next.jwt_audience;
	cfg_.jwt_leeway_s = next.jwt_leeway_s;
	cfg_.jwt_max_lifetime_s = next.jwt_max_lifetime_s;
	cfg_.metrics_token = next.metrics_token;
	cfg_.allowed_origins = next.allowed_origins;
	cfg_.auth_timeout_ms = next.auth_timeout_ms;
	/* The descriptor limit still applies (core/fd_budget.hpp): clamp again, or keep the old limits.
	 */
	FdPlan plan =
		plan_fds(sh_->nofile, next.max_sockets, next.max_pending_auth, cfg_.db_workers + 1);
	if (!plan.ok)
		LOG_WARN("fd_limit", "action=keep_limits detail=%s", log_quote(plan.message).c_str());
	else
	{
		if (plan.clamped)
			LOG_WARN("fd_limit", "action=clamp detail=%s", log_quote(plan.message).c_str());
		cfg_.max_sockets = plan.max_sockets;
		cfg_.max_sockets_per_user = std::min(next.max_sockets_per_user, plan.max_sockets);
		cfg_.max_pending_auth = next.max_pending_auth;
	}
	preauth_.set_limit(static_cast<size_t>(cfg_.max_pending_auth));
	cfg_.trusted_proxies = next.trusted_proxies;
	cfg_.max_sockets_per_address = next.max_sockets_per_address;
	cfg_.max_pending_auth_per_address = next.max_pending_auth_per_address;
	address_limits_.set_limits(address_socket_limit(cfg_),
							   static_cast<size_t>(cfg_.max_pending_auth_per_address));
	conn_limits_.set_limits(address_socket_limit(cfg_), 1);
	cfg_.send_queue_bytes = next.send_queue_bytes;
	cfg_.max_message_bytes = next.max_message_bytes;
	cfg_.client_message_rate = next.client_message_rate;
	cfg_.client_message_burst = next.client_message_burst;
	cfg_.resume_rate = next.resume_rate;
	cfg_.resume_burst = next.resume_burst;
	resumes_.set(cfg_.resume_rate, cfg_.resume_burst);
	if (next.auth == cfg_.auth)
		rebuild_verifier();
	groups_.set_limits(static_cast<size_t>(cfg_.max_sockets),
					   static_cast<size_t>(cfg_.max_sockets_per_user));
	for (auto &kv : sessions_)
	{
		kv.second->queue.set_limit(cfg_.send_queue_bytes);
		kv.second->messages.set(cfg_.client_message_rate, cfg_.client_message_burst);
	}
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
		if (session_established(s->state))
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
		established = established || session_established(kv.second->state);
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

/* Service thread (lws timer): systemd's watchdog, proving the event loop still turns. */
void
Server::watchdog_tick(lws_sorted_usec_list_t *sul)
{
	Server *s = static_cast<Server *>(Timer::owner_of(sul));
	sd_notify(0, "WATCHDOG=1");
	lws_sul_schedule(s->ctx_, 0, &s->watchdog_timer_.sul, watchdog_tick,
					 static_cast<lws_usec_t>(s->watchdog_usec_ / 2));
}

} // namespace livenotify
