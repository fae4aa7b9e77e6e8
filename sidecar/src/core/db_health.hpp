/*
 * db_health.hpp: what /healthz and /metrics say about the database.
 *
 * A connected session proves nothing: a backend that is frozen, a silent
 * partition or a revoked privilege all leave the socket open.  Health is
 * therefore the age of the reader's last successful livenotify.read() (every
 * read returns within read_timeout_ms when the database works, so an older
 * one means the reader is stuck or failing), and whether the catch-up
 * connections answer: the workers that failed their last database call
 * (connect, time-out, lost session, persistent error) until one succeeds.
 *
 * The state is written by the database threads and read by the service
 * thread; evaluate_health() is pure so it is unit-tested without sockets.
 *
 * Free of lws and libpq.
 */
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace livenotify
{

/*
 * SQLSTATEs that retrying soon will not cure: privileges, a missing function,
 * schema or table (extension not installed or too old), a missing database,
 * failed authentication.  The daemon still retries (an operator may GRANT or
 * install), with a growing delay, and says so at 503.
 */
bool persistent_sqlstate(std::string_view sqlstate);

/*
 * What /healthz may say about a failure: its kind and SQLSTATE, not the
 * server's text (which names hosts, roles and objects; /healthz is on the
 * public listener).  The full text is in the log line of the attempt.
 */
enum class DbFailure
{
	Connect,
	TimedOut,
	ConnLost,
	Error,
	Standby /* the server is in recovery: livenotifyd needs the primary */
};
std::string failure_summary(DbFailure kind, std::string_view sqlstate);

class DbHealth
{
public:
	using Clock = std::chrono::steady_clock;

	/* Reader thread: a read() returned rows or its timeout, the database works. */
	void read_ok(Clock::time_point now)
	{
		last_read_ns_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
		std::lock_guard<std::mutex> g(mu_);
		reader_error_.clear();
	}
	/* Reader thread: the last attempt failed with this text (kept for /healthz). */
	void reader_failed(std::string error)
	{
		std::lock_guard<std::mutex> g(mu_);
		reader_error_ = std::move(error);
	}
	/* Age of the last successful read; nullopt before the first one. */
	std::optional<std::chrono::milliseconds> read_age(Clock::time_point now) const
	{
		int64_t ns = last_read_ns_.load(std::memory_order_relaxed);
		if (ns == 0)
			return std::nullopt;
		return std::chrono::duration_cast<std::chrono::milliseconds>(
			now - Clock::time_point(Clock::duration(ns)));
	}

	/* A worker thread: its state after a database call (each worker reports its own change). */
	void worker_changed(bool now_failing, const std::string &error)
	{
		if (now_failing)
		{
			workers_failing_.fetch_add(1, std::memory_order_relaxed);
			std::lock_guard<std::mutex> g(mu_);
			worker_error_ = error;
		}
		else
			workers_failing_.fetch_sub(1, std::memory_order_relaxed);
	}
	int workers_failing() const
	{
		return workers_failing_.load(std::memory_order_relaxed);
	}

	std::string reader_error() const
	{
		std::lock_guard<std::mutex> g(mu_);
		return reader_error_;
	}
	std::string worker_error() const
	{
		std::lock_guard<std::mutex> g(mu_);
		return worker_error_;
	}

private:
	std::atomic<int64_t> last_read_ns_{0};
	std::atomic<int> workers_failing_{0};
	mutable std::mutex mu_;
	std::string reader_error_;
	std::string worker_error_;
};

struct HealthInputs
{
	bool stopping = false;
	bool reader_up = false;							   /* the reader's last read succeeded */
	std::optional<std::chrono::milliseconds> read_age; /* nullopt: never read */
	std::chrono::milliseconds max_read_age{0};
	int workers = 0;
	int workers_failing = 0;
	std::string reader_error; /* last failure of the reader, if any */
	std::string worker_error; /* last failure of a worker, if any */
};

struct HealthVerdict
{
	bool ok = false;
	std::string body; /* one line, ends with '\n' */
};

/* 200 "ok", or 503 with the first reason found (stopping, reader, read age, workers). */
HealthVerdict evaluate_health(const HealthInputs &in);

} // namespace livenotify
