/*
 * fd_budget.hpp: what the file descriptor limit allows, and what the accept
 * loop does when descriptors run out.  No sockets here.
 *
 * Every socket costs a descriptor before any admission check runs, and the
 * daemon needs more of them than it has sockets: database connections (a
 * reconnect opens the new one before the old is gone), the event loop, logs.
 * max_sockets + 256 used to be given to lws unchecked, so at RLIMIT_NOFILE
 * accept() failed with EMFILE while the listening socket stayed readable: the
 * loop turned at 100% of a core and logged 20 MB/s (issue 12, finding 5).
 *
 * Now (1) the limits are planned against RLIMIT_NOFILE at startup (max_sockets
 * clamped with a warning, or a refusal when not even one socket fits), (2) the
 * listener stops accepting at socket_cap descriptors of sockets, below the
 * limit, so the reserve stays for the database, and (3) if accept() still
 * fails with EMFILE/ENFILE (another part of the process, or the whole
 * system, ran out), the listener pauses for a short interval instead of
 * retrying at once, and says so once per interval.
 */
#pragma once

#include <cstdint>
#include <string>

namespace livenotify
{

/* Descriptors kept out of the sockets' reach: stdio, epoll, eventfd, lws's pipe, logs, files. */
static const uint64_t kFdFixedReserve = 32;
/* Sockets still in their HTTP upgrade (not counted by max_sockets or max_pending_auth). */
static const uint64_t kFdUpgradeHeadroom = 64;

struct FdPlan
{
	bool ok = true;			 /* false: refuse to start (message says why) */
	bool clamped = false;	 /* max_sockets was lowered (message says from what) */
	int max_sockets = 0;	 /* what the daemon will use */
	uint64_t socket_cap = 0; /* accepted sockets at most (the listener pauses there) */
	std::string message;
};

/*
 * nofile: the soft RLIMIT_NOFILE after raising it to the hard limit.
 * db_connections: the reader and the workers (each may briefly hold two).
 */
inline FdPlan
plan_fds(uint64_t nofile, int max_sockets, int max_pending_auth, int db_connections)
{
	FdPlan p;
	uint64_t reserve = kFdFixedReserve + 2 * static_cast<uint64_t>(db_connections);
	uint64_t fixed = reserve + kFdUpgradeHeadroom + static_cast<uint64_t>(max_pending_auth);
	if (nofile <= fixed)
	{
		p.ok = false;
		p.message = "the file descriptor limit (RLIMIT_NOFILE " + std::to_string(nofile) +
					") cannot hold one socket: it needs more than " + std::to_string(fixed) +
					" (reserve " + std::to_string(reserve) + " + upgrade headroom " +
					std::to_string(kFdUpgradeHeadroom) + " + max_pending_auth " +
					std::to_string(max_pending_auth) + "); raise LimitNOFILE / ulimit -n";
		return p;
	}
	p.socket_cap = nofile - reserve;
	uint64_t room = nofile - fixed;
	p.max_sockets = max_sockets;
	if (static_cast<uint64_t>(max_sockets) > room)
	{
		p.clamped = true;
		p.max_sockets = static_cast<int>(room);
		p.message = "max_sockets " + std::to_string(max_sockets) + " lowered to " +
					std::to_string(room) + " by the file descriptor limit (RLIMIT_NOFILE " +
					std::to_string(nofile) + "; reserve " + std::to_string(reserve) +
					", upgrade headroom " + std::to_string(kFdUpgradeHeadroom) +
					", max_pending_auth " + std::to_string(max_pending_auth) + ")";
	}
	return p;
}

/*
 * The accept loop's answer to EMFILE/ENFILE: pause, and log at most once per
 * log interval with how many failures that line stands for.  Times in ms on
 * a monotonic clock.
 */
class AcceptBackoff
{
public:
	static const int64_t kPauseMs = 200;
	static const int64_t kLogIntervalMs = 1000;

	struct Decision
	{
		int64_t pause_ms;
		bool log;		   /* write a log line now */
		uint64_t failures; /* failures this line reports (since the previous line) */
	};

	Decision on_failure(int64_t now_ms)
	{
		failures_++;
		total_++;
		Decision d{kPauseMs, false, 0};
		if (!logged_once_ || now_ms - last_log_ms_ >= kLogIntervalMs)
		{
			d.log = true;
			d.failures = failures_;
			failures_ = 0;
			last_log_ms_ = now_ms;
			logged_once_ = true;
		}
		return d;
	}

	uint64_t total() const
	{
		return total_;
	}

private:
	uint64_t failures_ = 0;
	uint64_t total_ = 0;
	int64_t last_log_ms_ = 0;
	bool logged_once_ = false;
};

} // namespace livenotify
