/*
 * http_endpoints.cpp: the plain HTTP requests of the listener (/healthz,
 * /metrics, and a plain GET of the WebSocket path).
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "metrics.hpp"

namespace livenotify
{

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

/* LWS_CALLBACK_HTTP: a plain HTTP request (no upgrade); in is the path. */
int
Server::on_http(struct lws *wsi, const char *uri)
{
	std::string path = uri ? uri : "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
	if (path == "/healthz")
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
		return http_reply(wsi, v.ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
						  "text/plain", v.body);
	}
	if (path == "/metrics")
		return http_reply(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4", metrics_text());
	if (path == cfg_.ws_path)
		return http_reply(wsi, HTTP_STATUS_BAD_REQUEST, "text/plain",
						  "WebSocket upgrade required\n");
	return http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
}

} // namespace livenotify
