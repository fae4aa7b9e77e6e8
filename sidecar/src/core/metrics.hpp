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
	std::atomic<uint64_t> bytes_sent{0};
	std::atomic<uint64_t> slow_client_closes{0};
	std::atomic<uint64_t> auth_failures{0};
	std::atomic<uint64_t> rejected_connections{0}; /* origin, limits, path, bad handshakes */
	std::atomic<uint64_t> tokens_expired{0};	   /* sockets closed 4001 at token expiry */
	std::atomic<uint64_t> connections_total{0};
	std::atomic<uint64_t> entries_read{0};
	std::atomic<uint64_t> lost_entries{0};
	std::atomic<uint64_t> resyncs{0};
	std::atomic<uint64_t> overflows{0}; /* 'overflow' entries read (livenotify.max_pending) */
	std::atomic<uint64_t> db_reconnects{0};
	std::atomic<uint64_t> catchup_rows{0};
	std::atomic<uint64_t> db_errors{0};
	std::atomic<uint64_t> unread_counts_fetched{0}; /* users counted in the database */
	std::atomic<uint64_t> unread_cache_hits{0};		/* frames counted from the cache */
	std::atomic<int64_t> last_seq{0};
	std::atomic<int> db_up{0};
};

struct Gauges
{
	uint64_t sockets = 0;
	uint64_t users = 0;
	uint64_t pending_auth = 0; /* sockets not authenticated yet */
	uint64_t queued_bytes = 0;
	double queue_lag_seconds = 0; /* age of the oldest unsent frame */
};

std::string render_metrics(const Counters &c, const Gauges &g);

} // namespace livenotify
