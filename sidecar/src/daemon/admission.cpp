/*
 * admission.cpp: who gets a socket.  The upgrade filter (path, origin,
 * resume point, credentials, socket limits), authentication (a token in the
 * URL or the subprotocol, a first message, SQL through a worker) with its
 * deadline, and the release of the session's limit slot when it goes.
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "client_message.hpp"
#include "log.hpp"

namespace livenotify
{

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
		case kHttpTooManyRequests:
			phrase = "Too Many Requests";
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
	/*
	 * lws_hdr_copy() gives "" both for no Origin and for an empty one; the
	 * first fragment tells them apart (-1: the header is absent,
	 * lib/roles/http/parsers.c).  Only an absent one is a non-browser client.
	 */
	char probe[2];
	bool origin_present =
		origin[0] || lws_hdr_copy_fragment(wsi, probe, sizeof(probe), WSI_TOKEN_ORIGIN, 0) >= 0;
	if (!origin_allowed(cfg_.allowed_origins,
						origin_present ? std::optional<std::string_view>(origin) : std::nullopt))
		return reject(wsi, HTTP_STATUS_FORBIDDEN, "origin", peer_s, "origin=" + log_quote(origin));

	/*
	 * The client address that per-address limits count (core/net_address.hpp):
	 * X-Forwarded-For is only read when the TCP peer is a trusted proxy.  A
	 * header too long to copy is treated as garbled: the proxy is the client.
	 */
	std::string client = peer_s;
	{
		static thread_local char xff[2048];
		xff[0] = '\0';
		std::string_view forwarded;
		if (!cfg_.trusted_proxies.empty() &&
			lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR) > 0)
			forwarded = xff;
		if (std::optional<IpAddress> a = client_address(peer_s, forwarded, cfg_.trusted_proxies))
			client = a->str();
	}

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

	auto s = std::make_unique<Session>(cfg_.send_queue_bytes, &queue_totals_,
									   cfg_.client_message_rate, cfg_.client_message_burst);
	s->id = next_id_++;
	s->peer = peer_s;
	s->client_addr = client;
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
		s->token_exp = r.exp; /* the socket closes 4001 then (token_expiry.cpp) */
		have_user = true;
	}
	else if (cfg_.auth == AuthMode::None && !none_user.empty())
	{
		s->user = none_user;
		have_user = true;
	}
	else if (cfg_.auth == AuthMode::Sql && !token.empty())
		s->pending_token = token;

	/*
	 * Per client address, before any other limit takes a place (nginx's
	 * limit_conn): one address cannot fill the pre-auth budget, nor hold more
	 * than max_sockets_per_address sockets (core/address_limits.hpp).
	 */
	std::string client_note = client == peer_s ? "" : "client=" + log_quote(client);
	switch (address_limits_.admit(client, !have_user))
	{
		case AddressAdmission::SocketLimit:
			return reject(wsi, kHttpTooManyRequests, "address_socket_limit", peer_s, client_note);
		case AddressAdmission::PendingLimit:
			return reject(wsi, kHttpTooManyRequests, "address_pending_limit", peer_s, client_note);
		case AddressAdmission::Ok:
			break;
	}
	s->addr_slot = have_user ? AddressSlot::Socket : AddressSlot::Pending;

	if (have_user)
	{
		Admission a = groups_.admit(s->user);
		if (a != Admission::Ok)
			address_limits_.release(client, false);
		switch (a)
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
		/*
		 * The user is unknown until it authenticates: the socket takes a place
		 * in the pre-auth budget, not one of max_sockets (core/preauth.hpp);
		 * when the budget is full the oldest pending socket goes.
		 */
		if (std::optional<uint64_t> old = preauth_.admit(s->id))
			evict_pending(*old);
		s->slot = SessionSlot::Reserved;
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
	advance(s, SessionEvent::Established);
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
		advance(s, SessionEvent::AuthSubmitted);
		Job j;
		j.type = Job::Type::AuthSql;
		j.session = s->id;
		j.live = s->live;
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
	if (session_authenticating(s->state))
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
	if (s->slot == SessionSlot::Reserved)
		release_slot(s);
	if (s->addr_slot == AddressSlot::Pending)
	{
		address_limits_.authenticated(s->client_addr);
		s->addr_slot = AddressSlot::Socket;
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
	if (!resume_allowed(s))
		return;
	if (!advance(s, SessionEvent::AuthAccepted))
		return;
	arm_token_expiry(s);
	s->slot = SessionSlot::Member;
	if (groups_.add(user, s))
		sh_->active.activate(user); /* before catch-up starts, so no row falls between the two */

	enqueue(s, make_hello_frame(user, sh_->epoch.load(), LWS_PRE), true);

	/*
	 * Before the reader's first position there is no live stream for this
	 * socket yet: rows committed from now until that position would be in
	 * neither a catch-up run now nor the live frames.  So a resume waits for
	 * the position (reader_ready()), and a socket without one gets resync
	 * `epoch` then.  The position is read after activate(): once it is set,
	 * the reader delivers everything committed from here on.
	 */
	bool resume_asked = s->last_id || s->cursor;
	s->reader_wait = reader_wait_at_auth(sh_->reader_positioned.load(), resume_asked);
	std::string resume_note;
	if (resume_asked)
	{
		resume_note = s->cursor ? " cursor=" + log_quote(s->cursor->encode())
								: " last_id=" + std::to_string(*s->last_id);
		if (s->reader_wait == ReaderWait::Resume)
		{
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

/*
 * resume_rate per user (core/rate_limit.hpp): a resume costs catch-up
 * queries, and one account that connects with last_id=0 and hangs up in a
 * loop (35k times in 33 s, issue 12) made another user's resume wait 14 s.
 * Over the rate the socket is closed 1013 `resume rate exceeded` before it
 * joins its group or queries anything; the client retries with its backoff
 * (docs/protocol.md).  A socket that does not resume is not counted.  The
 * warning is logged at most once a second, with the count since the last.
 */
bool
Server::resume_allowed(Session *s)
{
	if (!s->last_id && !s->cursor)
		return true;
	auto now = std::chrono::steady_clock::now();
	if (resumes_.take(s->user, now))
		return true;
	sh_->counters.resume_rate_limited.fetch_add(1, std::memory_order_relaxed);
	resume_limited_since_log_++;
	if (now - resume_limited_logged_ >= std::chrono::seconds(1))
	{
		LOG_WARN("ws_resume_rate_limited", "session=%llu user=%s peer=%s refused=%zu",
				 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(),
				 log_quote(s->peer).c_str(), resume_limited_since_log_);
		resume_limited_since_log_ = 0;
		resume_limited_logged_ = now;
	}
	close_session(s, kCloseTryAgainLater, "resume rate exceeded");
	return false;
}

/* Give back the limit slot the session holds (admission, authentication, close). */
void
Server::release_slot(Session *s)
{
	if (s->slot == SessionSlot::Member && groups_.remove(s->user, s))
		sh_->active.deactivate(s->user);
	if (s->slot == SessionSlot::Reserved)
		preauth_.remove(s->id);
	s->slot = SessionSlot::None;
}

/*
 * The pre-auth budget is full: its oldest socket leaves it now (so the new
 * one fits) and is closed 1008 like an auth timeout.  One still upgrading
 * has no wsi to close yet; its auth deadline still applies.
 */
void
Server::evict_pending(uint64_t id)
{
	auto it = sessions_.find(id);
	if (it == sessions_.end())
		return;
	Session *s = it->second;
	s->slot = SessionSlot::None;
	sh_->counters.auth_failures.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("ws_auth_failed", "session=%llu peer=%s reason=preauth_evicted",
			 static_cast<unsigned long long>(s->id), log_quote(s->peer).c_str());
	close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "authentication timeout");
}

/*
 * LWS_CALLBACK_RECEIVE: a piece of a client message.  Pieces are joined up
 * to max_message_bytes; nothing is read once our close is decided.
 */
void
Server::on_receive(struct lws *wsi, Session *s, const void *in, size_t len)
{
	if (session_closing(s->state))
		return;
	if (s->rx.size() + len > cfg_.max_message_bytes)
	{
		/* Too big for any message we accept: 1009, and the buffer never grows past the cap. */
		s->rx.clear();
		LOG_WARN("message_too_big", "session=%llu user=%s", static_cast<unsigned long long>(s->id),
				 log_quote(s->user).c_str());
		close_session(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
		return;
	}
	s->rx.append(static_cast<const char *>(in), len);
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return;
	if (lws_frame_is_binary(wsi))
	{
		s->rx.clear();
		/* docs/protocol.md: anything but an auth or resume message before
		 * authentication, a binary frame included, is 1008 `unauthorized`. */
		if (session_authenticating(s->state))
			auth_failed(s, "binary_message");
		return;
	}
	on_message(s);
	s->rx.clear();
}

/*
 * The SQL auth answer for a session.  Only a session still in AuthPending
 * takes it: one closed meanwhile (auth deadline, shutdown) drops it.
 */
void
Server::on_auth_result(Session *s, const Event &e)
{
	if (!session_takes_auth_result(s->state))
		return;
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
}

/* A complete client message. */
void
Server::on_message(Session *s)
{
	/*
	 * client_message_rate, every message counted (core/rate_limit.hpp): a
	 * client has no reason to send more than a ping now and then, and each
	 * message is a JSON parse on this thread (docs/protocol.md "Limits").
	 */
	if (!s->messages.take(std::chrono::steady_clock::now()))
	{
		sh_->counters.client_messages_rate_limited.fetch_add(1, std::memory_order_relaxed);
		LOG_WARN("message_rate_exceeded", "session=%llu user=%s peer=%s",
				 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(),
				 log_quote(s->peer).c_str());
		close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "message rate exceeded");
		return;
	}
	MessageRoute route = session_message_route(s->state);
	if (route == MessageRoute::Ignore)
		return; /* SQL auth in flight (wait for its answer), or closing */
	ClientMessage m = parse_client_message(s->rx);
	if (route == MessageRoute::Command)
	{
		/* After auth only ping means anything; garbage is ignored, never fatal. */
		if (m.type == ClientMessage::Type::Ping)
			send_pong(s);
		else
			LOG_DEBUG("message_ignored", "session=%llu type=%d",
					  static_cast<unsigned long long>(s->id), static_cast<int>(m.type));
		return;
	}
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
		s->token_exp = r.exp;
		authenticated(s, r.user, "jwt");
		return;
	}
	advance(s, SessionEvent::AuthSubmitted);
	Job j;
	j.type = Job::Type::AuthSql;
	j.session = s->id;
	j.live = s->live;
	j.token = *m.token;
	sh_->jobs.push(std::move(j));
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
	s->live->store(false, std::memory_order_release); /* its queued catch-up jobs are dropped */
	lws_sul_cancel(&s->expiry_timer.sul);
	release_slot(s);
	if (s->addr_slot != AddressSlot::None)
		address_limits_.release(s->client_addr, s->addr_slot == AddressSlot::Pending);
	s->addr_slot = AddressSlot::None;
	sessions_.erase(s->id);
	bool was_established = session_established(s->state);
	advance(s, SessionEvent::Gone);
	if (was_established)
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

} // namespace livenotify
