/*
 * db.cpp: see db.hpp.
 */
#include "db.hpp"

#include "conninfo.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <poll.h>
#include <thread>

namespace livenotify
{

std::string
one_line(const char *msg)
{
	std::string s = msg ? msg : "";
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	for (char &c : s)
		if (c == '\n' || c == '\t')
			c = ' ';
	return s;
}

PgConn::Wait
PgConn::wait(bool for_write, Deadline deadline)
{
	struct pollfd fds[2];
	fds[0].fd = PQsocket(conn_);
	fds[0].events = for_write ? POLLOUT : POLLIN;
	fds[0].revents = 0;
	fds[1].fd = stop_fd_;
	fds[1].events = POLLIN;
	fds[1].revents = 0;
	for (;;)
	{
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
						deadline - std::chrono::steady_clock::now())
						.count();
		if (left <= 0)
			return Wait::TimedOut;
		/* Rounded up: poll() must not return just before the deadline and spin. */
		int n = poll(fds, 2, static_cast<int>(std::min<long long>(left + 1, INT_MAX)));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return Wait::Stopped;
		if (fds[1].revents & POLLIN)
			return Wait::Stopped;
		if (n == 0)
			continue; /* the deadline check above decides */
		return Wait::Ready;
	}
}

namespace
{
/* Cancel threads running now (cancel_in_background). */
std::atomic<int> cancels_in_flight{0};
constexpr int kMaxCancelsInFlight = 4;
} // namespace

void
cancel_in_background(PGconn *conn)
{
	PGcancel *c = PQgetCancel(conn);
	if (!c)
		return;
	if (cancels_in_flight.fetch_add(1) >= kMaxCancelsInFlight)
	{
		cancels_in_flight.fetch_sub(1);
		PQfreeCancel(c);
		return;
	}
	/* The PGcancel is independent of the PGconn (libpq docs): it may outlive PQfinish. */
	std::thread([c] {
		char buf[256];
		PQcancel(c, buf, sizeof(buf));
		PQfreeCancel(c);
		cancels_in_flight.fetch_sub(1);
	}).detach();
}

void
PgConn::abandon()
{
	if (!conn_)
		return;
	cancel_in_background(conn_);
	/*
	 * PQfinish writes a Terminate message without waiting (the session is in
	 * non-blocking mode) and closes the socket: it does not block on a backend
	 * that does not read.
	 */
	close();
}

bool
PgConn::connect(const std::string &conninfo, const std::string &application_name, std::string *err)
{
	close();
	ConnParams params;
	if (!build_conninfo(conninfo, application_name, &params, err))
		return false;
	std::vector<const char *> keys, vals;
	for (size_t i = 0; i < params.keys.size(); i++)
	{
		keys.push_back(params.keys[i].c_str());
		vals.push_back(params.values[i].c_str());
	}
	keys.push_back(nullptr);
	vals.push_back(nullptr);
	conn_ = PQconnectStartParams(keys.data(), vals.data(), 0);
	if (!conn_)
	{
		*err = "out of memory";
		return false;
	}
	if (PQstatus(conn_) == CONNECTION_BAD)
	{
		*err = one_line(PQerrorMessage(conn_));
		close();
		return false;
	}
	/*
	 * connect_timeout applies per host in libpq; PQconnectPoll leaves it to
	 * the caller, so the whole attempt gets connect_timeout x hosts (libpq
	 * moves to the next host by itself on a refusal, not on a silent one).
	 * Without connect_timeout: the statement deadline.
	 */
	int64_t budget_ms = params.connect_timeout_s > 0
							? int64_t(params.connect_timeout_s) * 1000 * params.hosts
							: timeout_ms_;
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	for (;;)
	{
		if (st == PGRES_POLLING_OK)
			break;
		if (st == PGRES_POLLING_FAILED)
		{
			*err = one_line(PQerrorMessage(conn_));
			close();
			return false;
		}
		Wait w = wait(st == PGRES_POLLING_WRITING, deadline);
		if (w != Wait::Ready)
		{
			*err = w == Wait::Stopped
					   ? "interrupted"
					   : "connection timed out after " + std::to_string(budget_ms) +
							 " ms (connect_timeout " + std::to_string(params.connect_timeout_s) +
							 " s x " + std::to_string(params.hosts) + " host(s))";
			close();
			return false;
		}
		st = PQconnectPoll(conn_);
	}
	if (PQsetnonblocking(conn_, 1) != 0)
	{
		*err = one_line(PQerrorMessage(conn_));
		close();
		return false;
	}
	generation_++;
	return true;
}

/*
 * Cancel the running statement and read what the backend sends for it (the
 * "canceling statement due to user request" error, then ReadyForQuery), so
 * that the PQfinish that follows finds an idle session and ends it with a
 * Terminate message.  Closing the socket while the backend still has that
 * error to send makes it log "FATAL: connection to client lost" on every
 * daemon stop.  Bounded by timeout_ms: a backend that does not answer in
 * time (database unreachable) is dropped anyway.  The stop eventfd is not
 * watched here: it is already readable, that is why we are cancelling.
 */
void
PgConn::cancel_and_drain(int timeout_ms)
{
	if (!conn_)
		return;
	/*
	 * The cancel goes from a thread of its own: PQcancel blocks on a new
	 * connection to the server, which a partition makes minutes, and a
	 * shutdown must not wait for that.  Its answer is waited for below.
	 */
	cancel_in_background(conn_);
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	for (;;)
	{
		while (PQisBusy(conn_))
		{
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
							deadline - std::chrono::steady_clock::now())
							.count();
			if (left <= 0)
				return;
			struct pollfd p = {PQsocket(conn_), POLLIN, 0};
			int n = poll(&p, 1, static_cast<int>(left));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || !PQconsumeInput(conn_))
				return;
		}
		PGresult *r = PQgetResult(conn_);
		if (!r)
			return; /* idle: PQfinish ends the session cleanly */
		PQclear(r);
	}
}

std::string
PgConn::server() const
{
	if (!conn_)
		return "";
	const char *h = PQhost(conn_);
	const char *p = PQport(conn_);
	return std::string(h ? h : "") + ":" + (p ? p : "");
}

void
PgConn::close()
{
	if (conn_)
	{
		PQfinish(conn_);
		conn_ = nullptr;
	}
}

QueryResult
PgConn::query(const char *sql, const std::vector<std::optional<std::string>> &params)
{
	return run(Send::Query, sql, sql, params, 0);
}

QueryResult
PgConn::prepare(const std::string &name, const std::string &sql)
{
	return run(Send::Prepare, name.c_str(), sql.c_str(), {}, 0);
}

QueryResult
PgConn::exec_prepared(const std::string &name,
					  const std::vector<std::optional<std::string>> &params, int wait_ms)
{
	return run(Send::Prepared, name.c_str(), nullptr, params, wait_ms);
}

/* libpq's text parameters: NULL for SQL NULL. */
std::vector<const char *>
PgConn::param_values(const std::vector<std::optional<std::string>> &params)
{
	std::vector<const char *> values;
	values.reserve(params.size());
	for (const auto &p : params)
		values.push_back(p ? p->c_str() : nullptr);
	return values;
}

PgConn::Deadline
PgConn::deadline_in(int64_t ms)
{
	return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
}

PgConn::Step
PgConn::flush(Deadline deadline)
{
	for (;;)
	{
		int f = PQflush(conn_);
		if (f == 0)
			return Step::Ok;
		if (f < 0)
			return Step::Lost;
		Wait w = wait(true, deadline);
		if (w == Wait::TimedOut)
			return Step::TimedOut;
		if (w == Wait::Stopped)
			return Step::Stopped;
	}
}

PgConn::Step
PgConn::next_result(Deadline deadline, PGresult **r)
{
	while (PQisBusy(conn_))
	{
		Wait w = wait(false, deadline);
		if (w == Wait::TimedOut)
			return Step::TimedOut;
		if (w == Wait::Stopped)
			return Step::Stopped;
		if (!PQconsumeInput(conn_))
			return Step::Lost;
	}
	*r = PQgetResult(conn_);
	return Step::Ok;
}

PgConn::Step
PgConn::statement_result(Deadline deadline, PgResult *last)
{
	for (;;)
	{
		PGresult *r = nullptr;
		Step st = next_result(deadline, &r);
		if (st != Step::Ok)
			return st;
		if (!r)
			return Step::Ok;
		last->reset(r); /* keep the last result; a statement gives one, then NULL */
	}
}

QueryResult
PgConn::to_result(PgResult last)
{
	QueryResult out;
	if (!last)
	{
		out.status = PQstatus(conn_) == CONNECTION_BAD ? DbStatus::ConnLost : DbStatus::Error;
		out.error = one_line(PQerrorMessage(conn_));
		return out;
	}
	ExecStatusType st = PQresultStatus(last.get());
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
	{
		out.status = DbStatus::Ok;
		out.res = std::move(last);
		return out;
	}
	if (st == PGRES_PIPELINE_ABORTED)
	{
		out.status = DbStatus::Error;
		out.error = "not run: the statement before it in the pipeline failed";
		return out;
	}
	out.error = one_line(PQresultErrorMessage(last.get()));
	if (const char *state = PQresultErrorField(last.get(), PG_DIAG_SQLSTATE))
		out.sqlstate = state;
	out.status = PQstatus(conn_) == CONNECTION_BAD ? DbStatus::ConnLost : DbStatus::Error;
	out.res = std::move(last);
	return out;
}

QueryResult
PgConn::run(Send how, const char *name, const char *sql,
			const std::vector<std::optional<std::string>> &params, int wait_ms)
{
	QueryResult out;
	if (!conn_)
	{
		out.status = DbStatus::ConnLost;
		out.error = "not connected";
		return out;
	}
	int64_t limit_ms = int64_t(wait_ms) + timeout_ms_;
	Deadline deadline = deadline_in(limit_ms);
	std::vector<const char *> values = param_values(params);
	int n = static_cast<int>(values.size());
	int sent = 0;
	if (how == Send::Query)
		sent = PQsendQueryParams(conn_, sql, n, nullptr, values.data(), nullptr, nullptr, 0);
	else if (how == Send::Prepare)
		sent = PQsendPrepare(conn_, name, sql, 0, nullptr); /* parameter types from the SQL */
	else
		sent = PQsendQueryPrepared(conn_, name, n, values.data(), nullptr, nullptr, 0);
	if (!sent)
	{
		out.status = PQstatus(conn_) == CONNECTION_BAD ? DbStatus::ConnLost : DbStatus::Error;
		out.error = one_line(PQerrorMessage(conn_));
		return out;
	}
	/* Non-blocking mode: flush the query out before waiting for the answer. */
	Step st = flush(deadline);
	PgResult last;
	if (st == Step::Ok)
		st = statement_result(deadline, &last);
	if (st != Step::Ok)
		return failed(st, limit_ms, wait_ms);
	return to_result(std::move(last));
}

/* The end of a wait that did not give a result: what it means for the session. */
QueryResult
PgConn::failed(Step st, int64_t limit_ms, int wait_ms)
{
	QueryResult out;
	switch (st)
	{
		case Step::TimedOut:
			out.status = DbStatus::TimedOut;
			out.error = "no answer from the server within " + std::to_string(limit_ms) +
						" ms (statement wait " + std::to_string(wait_ms) + " ms + db_timeout_ms " +
						std::to_string(timeout_ms_) + "): cancelled, session dropped";
			abandon();
			break;
		case Step::Stopped:
			/*
			 * Shutdown while the server works (typically read() waiting on
			 * its latch): cancel so the backend stops promptly, wait for its
			 * answer, then end the session with PQfinish.
			 */
			cancel_and_drain(kCancelWaitMs);
			close();
			out.status = DbStatus::Interrupted;
			out.error = "interrupted";
			break;
		case Step::Lost:
		case Step::Ok:
			out.status = DbStatus::ConnLost;
			out.error = one_line(PQerrorMessage(conn_));
			break;
	}
	return out;
}

QueryResult
PgConn::exec_prepared_then(const std::string &first,
						   const std::vector<std::optional<std::string>> &params, int wait_ms,
						   const std::string &then, QueryResult *second)
{
	*second = QueryResult();
	second->status = DbStatus::Error;
	second->error = "not run";
	if (!conn_ || !PQenterPipelineMode(conn_))
	{
		/* Not idle or no pipeline: one after the other, as before. */
		QueryResult a = exec_prepared(first, params, wait_ms);
		if (a.ok())
			*second = exec_prepared(then, {});
		return a;
	}
	int64_t limit_ms = int64_t(wait_ms) + timeout_ms_;
	Deadline deadline = deadline_in(limit_ms);
	std::vector<const char *> values = param_values(params);
	int n = static_cast<int>(values.size());
	if (!PQsendQueryPrepared(conn_, first.c_str(), n, values.data(), nullptr, nullptr, 0) ||
		!PQsendQueryPrepared(conn_, then.c_str(), 0, nullptr, nullptr, nullptr, 0) ||
		!PQpipelineSync(conn_))
	{
		QueryResult out;
		out.status = PQstatus(conn_) == CONNECTION_BAD ? DbStatus::ConnLost : DbStatus::Error;
		out.error = one_line(PQerrorMessage(conn_));
		/* Nothing usable went out: the session is in an unknown protocol state. */
		close();
		if (out.status == DbStatus::Error)
			out.status = DbStatus::ConnLost;
		return out;
	}
	PgResult a, b;
	Step st = flush(deadline);
	if (st == Step::Ok)
		st = statement_result(deadline, &a);
	if (st == Step::Ok)
		st = statement_result(deadline, &b);
	/* Then the sync point, after which the session can leave pipeline mode. */
	PGresult *sync = nullptr;
	if (st == Step::Ok)
		st = next_result(deadline, &sync);
	if (st == Step::Ok && sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC)
	{
		PQclear(sync);
		if (!PQexitPipelineMode(conn_))
			st = Step::Lost;
	}
	else if (st == Step::Ok)
	{
		if (sync)
			PQclear(sync);
		st = Step::Lost; /* not the protocol we speak: drop the session */
	}
	if (st != Step::Ok)
	{
		QueryResult out = failed(st, limit_ms, wait_ms);
		if (conn_ && st == Step::Lost)
			close();
		return out;
	}
	*second = to_result(std::move(b));
	return to_result(std::move(a));
}

} // namespace livenotify
