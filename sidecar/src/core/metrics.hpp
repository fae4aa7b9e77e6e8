/*
 * metrics.hpp: counters shared by all threads and the Prometheus text for
 * GET /metrics.
 *
 * Counters are relaxed atomics: each is independent and a scrape only needs
 * a recent value.  Gauges that describe sockets are computed by the service
 * thread at scrape time and passed in.
 */
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace livenotify
{

struct Counters
{
	std::atomic<uint64_t> frames_sent{0};
	std::atomic<uint64_t> frames_written_directly{0}; /* without a WRITEABLE round (delivery.cpp) */
	std::atomic<uint64_t> bytes_sent{0};
	std::atomic<uint64_t> slow_client_closes{0};
	std::atomic<uint64_t> auth_failures{0};
	std::atomic<uint64_t> rejected_connections{0}; /* origin, limits, path, bad handshakes */
	std::atomic<uint64_t> tokens_expired{0};	   /* sockets closed 4001 at token expiry */
	std::atomic<uint64_t> connections_total{0};
	std::atomic<uint64_t> accept_pauses{0}; /* listener paused: EMFILE/ENFILE or at socket_cap */
	std::atomic<uint64_t> entries_read{0};
	std::atomic<uint64_t> read_batches{0};		 /* read() calls that returned entries */
	std::atomic<uint64_t> coalesce_waits{0};	 /* read_coalesce_us waits before a read() */
	std::atomic<uint64_t> reader_inbox_waits{0}; /* 100 ms waits for the service thread */
	std::atomic<uint64_t> lost_entries{0};
	std::atomic<uint64_t> resyncs{0};
	std::atomic<uint64_t> overflows{0}; /* 'overflow' entries read (livenotify.max_pending) */
	std::atomic<uint64_t> db_reconnects{0};
	std::atomic<uint64_t> catchup_rows{0};
	std::atomic<uint64_t> db_errors{0};
	std::atomic<uint64_t> db_standby{0}; /* sessions dropped because the server was in recovery */
	std::atomic<uint64_t> unread_counts_fetched{0}; /* users counted in the database */
	std::atomic<uint64_t> unread_cache_hits{0};		/* frames counted from the cache */
	std::atomic<int64_t> last_seq{0};
	std::atomic<int> db_up{0}; /* the reader's last read() succeeded */
	/* Database failures by connection kind (core/db_health.hpp). */
	std::atomic<uint64_t> db_connect_failures_reader{0};
	std::atomic<uint64_t> db_connect_failures_worker{0};
	std::atomic<uint64_t> db_timeouts_reader{0}; /* no answer by the deadline: dropped */
	std::atomic<uint64_t> db_timeouts_worker{0};
	std::atomic<uint64_t> db_persistent_errors_reader{0}; /* persistent_sqlstate() */
	std::atomic<uint64_t> db_persistent_errors_worker{0};
	std::atomic<uint64_t> unread_count_errors{0}; /* counting statements that failed */
	/* hostile clients (issue 12, findings 1 and 3) */
	std::atomic<uint64_t> client_messages_rate_limited{0}; /* sockets closed 1008 for it */
	std::atomic<uint64_t> pongs_coalesced{0};			   /* pings answered by a waiting pong */
	std::atomic<uint64_t> malloc_trims{0};
	std::atomic<uint64_t> resume_rate_limited{0}; /* resumes refused, 1013 */
	std::atomic<uint64_t> catchup_jobs_queued{0};
	std::atomic<uint64_t> catchup_jobs_run{0};	   /* pages queried */
	std::atomic<uint64_t> catchup_jobs_dropped{0}; /* session gone: not queried */
	std::atomic<uint64_t> catchup_jobs_refused{0}; /* catch-up queue full: page failed */
};

struct Gauges
{
	uint64_t sockets = 0;
	uint64_t users = 0;
	uint64_t pending_auth = 0; /* sockets not authenticated yet */
	uint64_t queued_bytes = 0;
	double queue_lag_seconds = 0;	   /* age of the oldest unsent frame */
	double last_read_age_seconds = -1; /* reader's last successful read(); < 0: never */
	uint64_t db_workers_failing = 0;
};

std::string render_metrics(const Counters &c, const Gauges &g);

} // namespace livenotify
