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
 * Every wait has a deadline.  A statement gets timeout_ms beyond the wait it
 * asks for itself (read()'s latch wait); past it the backend is taken for
 * hung (frozen, partitioned, stuck on I/O): a cancel is sent from a thread of
 * its own (PQcancel blocks, on a new connection to the server) and the
 * session is dropped, so the caller reconnects.  The connect is bounded by
 * connect_timeout (conninfo.hpp) per host, which PQconnectPoll does not
 * enforce itself.
 *
 * Thread: the owning database thread only.
 */
#pragma once

#include <libpq-fe.h>

#include <chrono>
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
	TimedOut,	/* no answer by the deadline: cancelled, the session dropped; reconnect */
	Interrupted /* shutdown */
};

struct QueryResult
{
	DbStatus status = DbStatus::Error;
	PgResult res;
	std::string error;
	std::string sqlstate; /* of a server error; empty otherwise */

	bool ok() const
	{
		return status == DbStatus::Ok;
	}
	/* The session is gone (lost, timed out, shutdown): no further statement on it. */
	bool session_gone() const
	{
		return status == DbStatus::ConnLost || status == DbStatus::TimedOut ||
			   status == DbStatus::Interrupted;
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

	/*
	 * Connect (non-blocking handshake) with the defaults of conninfo.hpp;
	 * false with *err set on failure, time-out or shutdown.
	 */
	bool connect(const std::string &conninfo, const std::string &application_name,
				 std::string *err);
	/* How long a statement may take beyond the wait it asks for (db_timeout_ms). */
	void set_timeout_ms(int ms)
	{
		timeout_ms_ = ms;
	}
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
	/*
	 * Run a statement prepare() made on this session (text parameters, text
	 * results).  wait_ms: how long the statement itself may wait (read()'s
	 * timeout); the deadline is that plus set_timeout_ms().
	 */
	QueryResult exec_prepared(const std::string &name,
							  const std::vector<std::optional<std::string>> &params,
							  int wait_ms = 0);
	/*
	 * Two statements prepare() made, in one round trip (libpq pipeline
	 * mode): the second runs the moment the first ends, in the same session,
	 * with nothing in between, as if sent after the first's answer.  wait_ms
	 * is the first's wait; one deadline for both.  A failed first statement
	 * gives the second an Error ("not run").  *second is set in every case.
	 */
	QueryResult exec_prepared_then(const std::string &first,
								   const std::vector<std::optional<std::string>> &params,
								   int wait_ms, const std::string &then, QueryResult *second);
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

	enum class Wait
	{
		Ready,
		Stopped,
		TimedOut
	};
	using Deadline = std::chrono::steady_clock::time_point;
	/* Wait until the socket is readable/writable, stop, or the deadline. */
	Wait wait(bool for_write, Deadline deadline);
	/* Drop a session whose backend did not answer in time (see db.hpp). */
	void abandon();
	/* Cancel the running statement and consume its results, for a clean PQfinish. */
	void cancel_and_drain(int timeout_ms);

	enum class Send
	{
		Query,
		Prepare,
		Prepared
	};
	QueryResult run(Send how, const char *name, const char *sql,
					const std::vector<std::optional<std::string>> &params, int wait_ms);

	/* How a wait for the server ended (flush(), next_result()). */
	enum class Step
	{
		Ok,
		TimedOut, /* past the deadline: the caller abandons the session */
		Stopped,  /* shutdown: the caller cancels and closes */
		Lost	  /* the connection broke; PQerrorMessage says why */
	};
	static std::vector<const char *>
	param_values(const std::vector<std::optional<std::string>> &params);
	static Deadline deadline_in(int64_t ms);
	/* Send what libpq buffered (non-blocking mode). */
	Step flush(Deadline deadline);
	/* The next result, or nullptr at the end of a statement's results (*r). */
	Step next_result(Deadline deadline, PGresult **r);
	/* All results of one statement: the last one (a statement gives one, then NULL). */
	Step statement_result(Deadline deadline, PgResult *last);
	/* A QueryResult from a statement's last result (none: the connection's error). */
	QueryResult to_result(PgResult last);
	/* A QueryResult for a wait that ended without a result (and what it does to the session). */
	QueryResult failed(Step st, int64_t limit_ms, int wait_ms);

	PGconn *conn_ = nullptr;
	int timeout_ms_ = 5000;
	int stop_fd_;
	uint64_t generation_ = 0;
};

/* One line of a libpq error message, for a log line. */
std::string one_line(const char *msg);

/*
 * Send a cancel request for conn's running statement from a detached thread:
 * PQcancel (libpq 15) connects to the server and blocks without a deadline,
 * which a partition makes minutes.  At most a few at a time; past that the
 * cancel is skipped (the dropped session ends the statement on the server
 * once the server notices, or statement_timeout does).
 */
void cancel_in_background(PGconn *conn);

} // namespace livenotify
