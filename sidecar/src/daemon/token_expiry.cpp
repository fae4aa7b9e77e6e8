/*
 * token_expiry.cpp: a socket authenticated by a JWT does not outlive it.
 *
 * At exp + jwt_leeway_s the socket is closed with 4001 "token expired"
 * (docs/protocol.md): the client fetches a new token and reconnects with its
 * resume cursor, so nothing is lost.  Without this a socket stayed open on a
 * token long expired (issue 12, finding 7).  SQL and none sessions have no
 * expiry.  The verifier bounds exp (jwt_max_lifetime_s), so the delay is
 * always a near, representable deadline.
 *
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "log.hpp"

#include <sys/time.h>

namespace livenotify
{

/* The close code of an expired token: 4000-4999 are the application's (RFC 6455 7.4.2). */
static const int kCloseTokenExpired = 4001;

/* Called when the session becomes Open (admission.cpp, authenticated()). */
void
Server::arm_token_expiry(Session *s)
{
	if (s->token_exp <= 0)
		return;
	struct timeval tv;
	gettimeofday(&tv, nullptr);
	double now = static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
	double left = s->token_exp + static_cast<double>(cfg_.jwt_leeway_s) - now;
	if (left < 0)
		left = 0;
	lws_sul_schedule(ctx_, 0, &s->expiry_timer.sul, token_expiry,
					 static_cast<lws_usec_t>(left * LWS_US_PER_SEC));
}

/* Service thread (lws timer). */
void
Server::token_expiry(lws_sorted_usec_list_t *sul)
{
	Session *s = static_cast<Session *>(Timer::owner_of(sul));
	Server *server = s->server;
	if (s->state != SessionState::Open)
		return;
	LOG_INFO("ws_token_expired", "session=%llu user=%s exp=%.0f",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), s->token_exp);
	server->sh_->counters.tokens_expired.fetch_add(1, std::memory_order_relaxed);
	server->close_session(s, kCloseTokenExpired, "token expired");
}

} // namespace livenotify
