/*
 * http_endpoints.cpp: the plain HTTP side of both listeners, and the HTTP
 * checks of an upgrade request.
 *
 * Public listener (listen_address:port): the WebSocket path and /healthz
 * only.  /healthz stays public on purpose: load balancers probe the port
 * they route to, and it tells only "serving or not".  Everything else is 404.
 *
 * Metrics listener (metrics_listen, loopback by default, a second lws vhost):
 * /metrics and /healthz, behind `Authorization: Bearer <metrics_token>` when
 * a token is configured; it never upgrades.
 *
 * Paths are compared exactly with what lws hands over.  lws 4.1 decodes %XX
 * and folds "//", "/./" and "/../" into the URI in place while it parses
 * (lib/roles/http/parsers.c, lws_parse_urldecode) and keeps no raw copy, so
 * "/%6detrics" or "/ws/../metrics" arrive here as "/metrics": on the public
 * listener that is a 404 now, since /metrics is not served there at all.
 *
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "handshake_check.hpp"
#include "log.hpp"
#include "metrics.hpp"

namespace livenotify
{

namespace
{

/* Service thread: the metrics vhost's lws entry point. */
int
metrics_entry(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	Server *server = ctx ? static_cast<Server *>(lws_context_user(ctx)) : nullptr;
	if (!server)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	return server->metrics_callback(wsi, reason, user, in, len);
}

/* A header's value (at most cap bytes); has: whether it was present at all. */
std::string
header(struct lws *wsi, enum lws_token_indexes token, size_t cap, bool *has = nullptr)
{
	int n = lws_hdr_total_length(wsi, token);
	if (has)
		*has = n > 0;
	if (n <= 0 || static_cast<size_t>(n) > cap)
		return n > 0 ? std::string(cap + 1, '?') : "";
	std::string v(static_cast<size_t>(n) + 1, '\0');
	if (lws_hdr_copy(wsi, &v[0], n + 1, token) < 0)
		return "";
	v.resize(static_cast<size_t>(n));
	return v;
}

/* Compare without an early exit, so the time taken says nothing about the token. */
bool
same_secret(const std::string &a, const std::string &b)
{
	unsigned char diff = a.size() == b.size() ? 0 : 1;
	for (size_t i = 0; i < a.size(); i++)
		diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
	return diff == 0 && !b.empty();
}

} // namespace

int
Server::http_reply(struct lws *wsi, unsigned int status, const char *ctype, const std::string &body,
				   const char *extra_name, const char *extra_value)
{
	std::vector<unsigned char> buf(LWS_PRE + 1024 + body.size());
	unsigned char *start = buf.data() + LWS_PRE, *p = start, *end = buf.data() + buf.size() - 1;
	if (lws_add_http_common_headers(wsi, status, ctype, body.size(), &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
									 reinterpret_cast<const unsigned char *>("no-store"), 8, &p,
									 end) ||
		(extra_name &&
		 lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char *>(extra_name),
									 reinterpret_cast<const unsigned char *>(extra_value),
									 static_cast<int>(strlen(extra_value)), &p, end)) ||
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
	g.pending_auth = preauth_.size();
	auto now = std::chrono::steady_clock::now();
	std::chrono::steady_clock::duration oldest{};
	for (const auto &kv : sessions_)
	{
		g.queued_bytes += kv.second->queue.bytes();
		oldest = std::max(oldest, kv.second->queue.oldest_age(now));
	}
	g.queue_lag_seconds = std::chrono::duration<double>(oldest).count();
	if (auto age = sh_->health.read_age(now))
		g.last_read_age_seconds = std::chrono::duration<double>(*age).count();
	g.db_workers_failing = static_cast<uint64_t>(std::max(0, sh_->health.workers_failing()));
	return render_metrics(sh_->counters, g);
}

int
Server::health_reply(struct lws *wsi)
{
	/*
	 * Not "is a session open": the age of the last successful read and
	 * the workers' state (core/db_health.hpp), so a hung backend or a
	 * revoked privilege shows.
	 */
	HealthInputs in;
	in.stopping = shutting_down_;
	in.reader_up = sh_->counters.db_up.load() != 0;
	in.read_age = sh_->health.read_age(std::chrono::steady_clock::now());
	in.max_read_age = std::chrono::milliseconds(effective_max_read_age_ms(sh_->cfg));
	in.workers = sh_->cfg.db_workers;
	in.workers_failing = sh_->health.workers_failing();
	in.reader_error = sh_->health.reader_error();
	in.worker_error = sh_->health.worker_error();
	HealthVerdict v = evaluate_health(in);
	return http_reply(wsi, v.ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE, "text/plain",
					  v.body);
}

/* LWS_CALLBACK_HTTP on the public listener: a plain HTTP request (no upgrade); in is the path. */
int
Server::on_http(struct lws *wsi, const char *uri)
{
	std::string path = uri ? uri : "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
	if (path == "/healthz")
		return health_reply(wsi);
	if (path == cfg_.ws_path)
		return http_reply(wsi, HTTP_STATUS_BAD_REQUEST, "text/plain",
						  "WebSocket upgrade required\n");
	return http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE on the public listener: lws calls it for
 * any request with an Upgrade header (in: its value), before it switches to
 * WebSocket or h2c (lib/roles/http/server/server.c, lws_handshake_server).
 * A refusal writes its status here and returns -1, which makes lws hang up.
 * The RFC 6455 checks lws 4.1 leaves out are core/handshake_check.hpp.
 */
int
Server::confirm_upgrade(struct lws *wsi, const char *upgrade)
{
	UpgradeHeaders h;
	std::string http_version = header(wsi, WSI_TOKEN_HTTP, 16);
	std::string version = header(wsi, WSI_TOKEN_VERSION, 16, &h.has_version);
	std::string key = header(wsi, WSI_TOKEN_KEY, 64, &h.has_key);
	h.http_version = http_version;
	h.upgrade = upgrade ? upgrade : "";
	h.version = version;
	h.key = key;
	UpgradeVerdict v = check_upgrade(h);
	if (!v.status)
		return 0;

	char peer[64] = "";
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	sh_->counters.rejected_connections.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("ws_rejected", "status=%d reason=%s peer=%s http=%s upgrade=%s version=%s", v.status,
			 v.reason, log_quote(peer).c_str(), log_quote(http_version).c_str(),
			 log_quote(h.upgrade.substr(0, 32)).c_str(), log_quote(version).c_str());

	/*
	 * The status line is written by hand, as send_status() (admission.cpp)
	 * does: lws would say "HTTP/1.0" on this path.
	 */
	std::string body = std::string(v.reason) + "\n";
	unsigned char buf[LWS_PRE + 1024];
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	char line[64];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s", v.status,
					 v.status == 426 ? "Upgrade Required" : "Bad Request");
	if (lws_add_http_header_by_name(wsi, nullptr, reinterpret_cast<unsigned char *>(line), n, &p,
									end) ||
		(v.want_version &&
		 lws_add_http_header_by_name(
			 wsi, reinterpret_cast<const unsigned char *>("sec-websocket-version:"),
			 reinterpret_cast<const unsigned char *>("13"), 2, &p, end)) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
									 reinterpret_cast<const unsigned char *>("text/plain"), 10, &p,
									 end) ||
		lws_add_http_header_content_length(wsi, body.size(), &p, end) ||
		lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
									 reinterpret_cast<const unsigned char *>("close"), 5, &p,
									 end) ||
		lws_finalize_http_header(wsi, &p, end) || static_cast<size_t>(end - p) < body.size())
		return -1;
	memcpy(p, body.data(), body.size());
	p += body.size();
	lws_write(wsi, start, static_cast<size_t>(p - start), LWS_WRITE_HTTP_HEADERS);
	return -1;
}

/* Main thread, from create(): the second vhost, unless metrics_listen is off. */
bool
Server::create_metrics_listener()
{
	if (cfg_.metrics_port == 0)
	{
		LOG_INFO("metrics_listener", "state=off");
		return true;
	}
	memset(metrics_protocols_, 0, sizeof(metrics_protocols_));
	metrics_protocols_[0].name = "livenotify-metrics";
	metrics_protocols_[0].callback = metrics_entry;

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "metrics";
	info.port = cfg_.metrics_port;
	info.iface = cfg_.metrics_address.c_str();
	info.protocols = metrics_protocols_;
	info.timeout_secs = 10;
	info.keepalive_timeout = 5;
	/* A metrics port that cannot be bound is a startup error, not a silent absence. */
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (cfg_.metrics_address.find(':') == std::string::npos && cfg_.metrics_address != "localhost")
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	metrics_vhost_ = lws_create_vhost(ctx_, &info);
	if (!metrics_vhost_)
	{
		LOG_ERROR("listen_failed", "listener=metrics address=%s port=%d",
				  log_quote(cfg_.metrics_address).c_str(), cfg_.metrics_port);
		return false;
	}
	LOG_INFO("metrics_listener", "address=%s port=%d token=%s",
			 log_quote(cfg_.metrics_address).c_str(), cfg_.metrics_port,
			 cfg_.metrics_token.empty() ? "none" : "required");
	return true;
}

int
Server::metrics_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
						 size_t len)
{
	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			return on_metrics_http(wsi, static_cast<const char *>(in));
		case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
			return -1; /* never a WebSocket (or h2c) here */
		default:
			break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* LWS_CALLBACK_HTTP on the metrics listener. */
int
Server::on_metrics_http(struct lws *wsi, const char *uri)
{
	std::string path = uri ? uri : "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
	if (!cfg_.metrics_token.empty())
	{
		std::string auth = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 512);
		if (!same_secret(auth, "Bearer " + cfg_.metrics_token))
		{
			char peer[64] = "";
			lws_get_peer_simple(wsi, peer, sizeof(peer));
			LOG_WARN("metrics_unauthorized", "peer=%s path=%s", log_quote(peer).c_str(),
					 log_quote(path).c_str());
			return http_reply(wsi, HTTP_STATUS_UNAUTHORIZED, "text/plain", "unauthorized\n",
							  "www-authenticate:", "Bearer");
		}
	}
	if (path == "/metrics")
		return http_reply(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", metrics_text());
	if (path == "/healthz")
		return health_reply(wsi);
	return http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
}

} // namespace livenotify
