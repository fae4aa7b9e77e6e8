/*
 * metrics.cpp: Prometheus text exposition format 0.0.4.
 */
#include "metrics.hpp"

#include <cstdio>
#include <initializer_list>
#include <utility>

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

/* One sample of a labelled family (HELP and TYPE once, before the first sample). */
void
labelled(std::string &out, const char *name, const char *type, const char *help,
		 std::initializer_list<std::pair<const char *, double>> samples, const char *label)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	out += buf;
	for (const auto &s : samples)
	{
		snprintf(buf, sizeof(buf), "%s{%s=\"%s\"} %.17g\n", name, label, s.first, s.second);
		out += buf;
	}
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
	metric(out, "livenotifyd_frames_written_directly_total", "counter",
		   "Frames written at once, without waiting for a writeable callback (nothing was "
		   "queued before them).",
		   load(c.frames_written_directly));
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
	metric(out, "livenotifyd_accept_pauses_total", "counter",
		   "Times the listener stopped accepting for a while: out of file descriptors "
		   "(EMFILE/ENFILE) or at its socket cap.",
		   load(c.accept_pauses));
	metric(out, "livenotifyd_queued_bytes", "gauge", "Bytes waiting in socket send queues.",
		   static_cast<double>(g.queued_bytes));
	metric(out, "livenotifyd_queue_lag_seconds", "gauge",
		   "Age of the oldest frame waiting in any socket send queue.", g.queue_lag_seconds);
	metric(out, "livenotifyd_entries_read_total", "counter",
		   "Queue entries read from livenotify.read().", load(c.entries_read));
	metric(out, "livenotifyd_read_batches_total", "counter",
		   "livenotify.read() calls that returned entries (entries_read / this: the batch size).",
		   load(c.read_batches));
	metric(out, "livenotifyd_reader_backpressure_waits_total", "counter",
		   "100 ms waits of the reader before a read() because the service thread still had "
		   "2 MB of frames to hand out (the rows wait in the ring meanwhile).",
		   load(c.reader_inbox_waits));
	metric(out, "livenotifyd_read_coalesce_waits_total", "counter",
		   "Waits of read_coalesce_us before a read(), taken under a stream of commits.",
		   load(c.coalesce_waits));
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
	metric(out, "livenotifyd_db_standby_total", "counter",
		   "Database sessions dropped because the server was a standby (in recovery).",
		   load(c.db_standby));
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
	/* +Inf before the first read: an alert on the age fires for a daemon that never read. */
	if (g.last_read_age_seconds < 0)
		out += "# HELP livenotifyd_last_read_age_seconds Seconds since the reader's last "
			   "successful livenotify.read().\n# TYPE livenotifyd_last_read_age_seconds "
			   "gauge\nlivenotifyd_last_read_age_seconds +Inf\n";
	else
		metric(out, "livenotifyd_last_read_age_seconds", "gauge",
			   "Seconds since the reader's last successful livenotify.read().",
			   g.last_read_age_seconds);
	labelled(out, "livenotifyd_db_connect_failures_total", "counter",
			 "Failed database connection attempts.",
			 {{"reader", load(c.db_connect_failures_reader)},
			  {"worker", load(c.db_connect_failures_worker)}},
			 "conn");
	labelled(out, "livenotifyd_db_timeouts_total", "counter",
			 "Database calls without an answer by their deadline (cancelled, session dropped).",
			 {{"reader", load(c.db_timeouts_reader)}, {"worker", load(c.db_timeouts_worker)}},
			 "conn");
	labelled(out, "livenotifyd_db_persistent_errors_total", "counter",
			 "Database errors that retrying will not cure soon (privileges, missing function, "
			 "database or role).",
			 {{"reader", load(c.db_persistent_errors_reader)},
			  {"worker", load(c.db_persistent_errors_worker)}},
			 "conn");
	metric(out, "livenotifyd_db_workers_failing", "gauge",
		   "Catch-up/auth connections whose last database call failed.",
		   static_cast<double>(g.db_workers_failing));
	metric(out, "livenotifyd_unread_count_errors_total", "counter",
		   "Unread-count statements that failed (frames carry unread_count_error).",
		   load(c.unread_count_errors));
	/* hostile clients (issue 12, findings 1 and 3) */
	metric(out, "livenotifyd_client_messages_rate_limited_total", "counter",
		   "Sockets closed with 1008 for sending messages faster than client_message_rate.",
		   load(c.client_messages_rate_limited));
	metric(out, "livenotifyd_pongs_coalesced_total", "counter",
		   "Client pings answered by a pong already waiting in the send queue.",
		   load(c.pongs_coalesced));
	metric(out, "livenotifyd_malloc_trims_total", "counter",
		   "Times freed memory was returned to the kernel (malloc_trim) after a burst.",
		   load(c.malloc_trims));
	metric(out, "livenotifyd_resume_rate_limited_total", "counter",
		   "Resumes refused with 1013 because the user resumed faster than resume_rate.",
		   load(c.resume_rate_limited));
	metric(out, "livenotifyd_catchup_jobs_queued_total", "counter",
		   "Catch-up page jobs queued for the workers.", load(c.catchup_jobs_queued));
	metric(out, "livenotifyd_catchup_jobs_run_total", "counter",
		   "Catch-up page jobs whose query ran.", load(c.catchup_jobs_run));
	metric(out, "livenotifyd_catchup_jobs_dropped_total", "counter",
		   "Catch-up page jobs dropped unqueried because their socket had closed.",
		   load(c.catchup_jobs_dropped));
	metric(out, "livenotifyd_catchup_jobs_refused_total", "counter",
		   "Catch-up page jobs refused because the catch-up queue was full (resync).",
		   load(c.catchup_jobs_refused));
	return out;
}

} // namespace livenotify
