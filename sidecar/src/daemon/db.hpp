/*
 * db.hpp: a libpq connection that never blocks past shutdown.
 *
 * Each database thread (the reader, every worker) owns one PgConn; a PGconn
 * is never shared between threads.  Connecting and querying use libpq's
 * asynchronous API and poll() on the socket together with the daemon's stop
 * eventfd, so SIGTERM interrupts a read() waiting on its latch at once (the
 * query is cancelled with PQcancel, its answer read, then the session ended
 * with PQfinish) instead of after read_timeout_ms.
 *
 * Thread: the owning database thread only.
 */
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace livenotify
{

struct PgResultFree
{
	void operator()(PGresult *r) const
	{
		PQclear(r);
	}
};
using PgResult = std::unique_ptr<PGresult, PgResultFree>;

enum class DbStatus
{
	Ok,
	Error,		/* the query failed; the connection is still usable */
	ConnLost,	/* the connection is gone: reconnect */
	Interrupted /* shutdown */
};

struct QueryResult
{
	DbStatus status = DbStatus::Error;
	PgResult res;
	std::string error;

	bool ok() const
	{
		return status == DbStatus::Ok;
	}
	int rows() const
	{
		return res ? PQntuples(res.get()) : 0;
	}
	bool is_null(int row, int col) const
	{
		return PQgetisnull(res.get(), row, col);
	}
	std::string text(int row, int col) const
	{
		return PQgetvalue(res.get(), row, col);
	}
	std::string_view view(int row, int col) const
	{
		return std::string_view(PQgetvalue(res.get(), row, col), PQgetlength(res.get(), row, col));
	}
	long long integer(int row, int col) const
	{
		return strtoll(PQgetvalue(res.get(), row, col), nullptr, 10);
	}
};

class PgConn
{
public:
	explicit PgConn(int stop_fd) : stop_fd_(stop_fd)
	{
	}
	~PgConn()
	{
		close();
	}
	PgConn(const PgConn &) = delete;
	PgConn &operator=(const PgConn &) = delete;

	/* Connect (non-blocking handshake); false with *err set on failure or shutdown. */
	bool connect(const std::string &conninfo, const std::string &application_name,
				 std::string *err);
	void close();
	/* host:port of the server this session reached (one of a multi-host URL's). */
	std::string server() const;
	bool connected() const
	{
		return conn_ != nullptr;
	}

	/* Run one parameterised statement (text parameters, text results). */
	QueryResult query(const char *sql, const std::vector<std::optional<std::string>> &params);
	/* Prepare a named statement on this session (PQsendPrepare). */
	QueryResult prepare(const std::string &name, const std::string &sql);
	/* Run a statement prepare() made on this session (text parameters, text results). */
	QueryResult exec_prepared(const std::string &name,
							  const std::vector<std::optional<std::string>> &params);
	/*
	 * Changes on every successful connect(): named statements belong to one
	 * session, so a caller that caches them compares this to know they are gone.
	 */
	uint64_t generation() const
	{
		return generation_;
	}

private:
	/* How long a shutdown waits for the backend to acknowledge a cancel. */
	static constexpr int kCancelWaitMs = 1000;

	/* Wait until the socket is readable/writable or stop; returns false on stop. */
	bool wait(bool for_write);
	/* Cancel the running statement and consume its results, for a clean PQfinish. */
	void cancel_and_drain(int timeout_ms);

	enum class Send
	{
		Query,
		Prepare,
		Prepared
	};
	QueryResult run(Send how, const char *name, const char *sql,
					const std::vector<std::optional<std::string>> &params);

	PGconn *conn_ = nullptr;
	int stop_fd_;
	uint64_t generation_ = 0;
};

/* One line of a libpq error message, for a log line. */
std::string one_line(const char *msg);

} // namespace livenotify
