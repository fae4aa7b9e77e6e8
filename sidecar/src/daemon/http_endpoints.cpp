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

} // namespace livenotify
