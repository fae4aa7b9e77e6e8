/*
 * metrics.cpp: Prometheus text exposition format 0.0.4.
 */
#include "metrics.hpp"

#include <cstdio>

namespace livenotify
{

namespace
{

void
metric(std::string &out, const char *name, const char *type, const char *help, double value)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
			 name, value);
	out += buf;
}

double
load(const std::atomic<uint64_t> &a)
{
	return static_cast<double>(a.load(std::memory_order_relaxed));
}

} // namespace

std::string
render_metrics(const Counters &c, const Gauges &g)
{
	std::string out;
	out.reserve(4096);
	metric(out, "livenotifyd_sockets", "gauge", "Open WebSocket connections.",
		   static_cast<double>(g.sockets));
	metric(out, "livenotifyd_users", "gauge", "Users with at least one open socket.",
		   static_cast<double>(g.users));
	metric(out, "livenotifyd_pending_auth_sockets", "gauge",
		   "Sockets not authenticated yet (their own budget, max_pending_auth).",
		   static_cast<double>(g.pending_auth));
	metric(out, "livenotifyd_frames_sent_total", "counter", "Frames written to sockets.",
		   load(c.frames_sent));
	metric(out, "livenotifyd_bytes_sent_total", "counter",
		   "Frame payload bytes written to sockets.", load(c.bytes_sent));
	metric(out, "livenotifyd_slow_client_closes_total", "counter",
		   "Sockets closed with 1008 because their send queue was full.",
		   load(c.slow_client_closes));
	metric(out, "livenotifyd_auth_failures_total", "counter", "Rejected authentications.",
		   load(c.auth_failures));
	metric(out, "livenotifyd_tokens_expired_total", "counter",
		   "Sockets closed with 4001 when their token expired.", load(c.tokens_expired));
	metric(out, "livenotifyd_rejected_connections_total", "counter",
		   "Connections refused for origin, path or limits.", load(c.rejected_connections));
	metric(out, "livenotifyd_connections_total", "counter", "WebSocket connections accepted.",
		   load(c.connections_total));
	metric(out, "livenotifyd_queued_bytes", "gauge", "Bytes waiting in socket send queues.",
		   static_cast<double>(g.queued_bytes));
	metric(out, "livenotifyd_queue_lag_seconds", "gauge",
		   "Age of the oldest frame waiting in any socket send queue.", g.queue_lag_seconds);
	metric(out, "livenotifyd_entries_read_total", "counter",
		   "Queue entries read from livenotify.read().", load(c.entries_read));
	metric(out, "livenotifyd_lost_entries_total", "counter",
		   "Queue entries overwritten before this sidecar read them.", load(c.lost_entries));
	metric(out, "livenotifyd_overflow_entries_total", "counter",
		   "Overflow entries read: transactions past livenotify.max_pending whose entries "
		   "collapsed (clients resync).",
		   load(c.overflows));
	metric(out, "livenotifyd_resyncs_total", "counter",
		   "Resync broadcasts (epoch change, lost entries, overflow...).", load(c.resyncs));
	metric(out, "livenotifyd_catchup_rows_total", "counter", "Rows replayed to resuming sockets.",
		   load(c.catchup_rows));
	metric(out, "livenotifyd_db_reconnects_total", "counter", "Database reconnections.",
		   load(c.db_reconnects));
	metric(out, "livenotifyd_db_errors_total", "counter", "Failed database calls.",
		   load(c.db_errors));
	metric(out, "livenotifyd_unread_counts_fetched_total", "counter",
		   "Unread counts fetched from the database (one per user per count statement).",
		   load(c.unread_counts_fetched));
	metric(out, "livenotifyd_unread_cache_hits_total", "counter",
		   "Notification frames whose unread count came from the cache.",
		   load(c.unread_cache_hits));
	metric(out, "livenotifyd_db_up", "gauge", "1 while the queue reader is connected.",
		   static_cast<double>(c.db_up.load(std::memory_order_relaxed)));
	metric(out, "livenotifyd_last_seq", "gauge", "Last queue sequence number processed.",
		   static_cast<double>(c.last_seq.load(std::memory_order_relaxed)));
	return out;
}

} // namespace livenotify
