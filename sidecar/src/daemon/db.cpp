/*
 * db.cpp: see db.hpp.
 */
#include "db.hpp"

#include "conninfo.hpp"

#include <cerrno>
#include <chrono>
#include <poll.h>

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

bool
PgConn::wait(bool for_write)
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
		int n = poll(fds, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		if (fds[1].revents & POLLIN)
			return false;
		return true;
	}
}

bool
PgConn::connect(const std::string &conninfo, const std::string &application_name, std::string *err)
{
	close();
	/*
	 * The configured string may be a URI or key=value pairs; expand_dbname
	 * lets "dbname" carry either, and application_name is added after it so
	 * pg_stat_activity shows which thread a session belongs to.
	 */
	std::vector<const char *> keys, vals;
	/*
	 * Defaults go before dbname: with expand_dbname, a keyword the URL sets
	 * overrides the entries before it (libpq docs, PQconnectdbParams).
	 */
	std::optional<std::string> tsa = default_target_session_attrs(conninfo);
	if (tsa)
	{
		keys.push_back("target_session_attrs");
		vals.push_back(tsa->c_str());
	}
	keys.push_back("dbname");
	vals.push_back(conninfo.c_str());
	keys.push_back("application_name");
	vals.push_back(application_name.c_str());
	keys.push_back(nullptr);
	vals.push_back(nullptr);
	conn_ = PQconnectStartParams(keys.data(), vals.data(), 1);
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
		if (!wait(st == PGRES_POLLING_WRITING))
		{
			*err = "interrupted";
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
	PGcancel *c = PQgetCancel(conn_);
	if (!c)
		return;
	char buf[256];
	int sent = PQcancel(c, buf, sizeof(buf));
	PQfreeCancel(c);
	if (!sent)
		return;
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
	return run(Send::Query, sql, sql, params);
}

QueryResult
PgConn::prepare(const std::string &name, const std::string &sql)
{
	return run(Send::Prepare, name.c_str(), sql.c_str(), {});
}

QueryResult
PgConn::exec_prepared(const std::string &name,
					  const std::vector<std::optional<std::string>> &params)
{
	return run(Send::Prepared, name.c_str(), nullptr, params);
}

QueryResult
PgConn::run(Send how, const char *name, const char *sql,
			const std::vector<std::optional<std::string>> &params)
{
	QueryResult out;
	if (!conn_)
	{
		out.status = DbStatus::ConnLost;
		out.error = "not connected";
		return out;
	}
	std::vector<const char *> values;
	values.reserve(params.size());
	for (const auto &p : params)
		values.push_back(p ? p->c_str() : nullptr);

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
	for (;;)
	{
		int f = PQflush(conn_);
		if (f == 0)
			break;
		if (f < 0 || !wait(true))
		{
			out.status = f < 0 ? DbStatus::ConnLost : DbStatus::Interrupted;
			out.error = f < 0 ? one_line(PQerrorMessage(conn_)) : "interrupted";
			if (f >= 0)
				close();
			return out;
		}
	}

	PgResult last;
	for (;;)
	{
		while (PQisBusy(conn_))
		{
			if (!wait(false))
			{
				/*
				 * Shutdown while the server works (typically read() waiting on
				 * its latch): cancel so the backend stops promptly, wait for
				 * its answer, then end the session with PQfinish.
				 */
				cancel_and_drain(kCancelWaitMs);
				close();
				out.status = DbStatus::Interrupted;
				out.error = "interrupted";
				return out;
			}
			if (!PQconsumeInput(conn_))
			{
				out.status = DbStatus::ConnLost;
				out.error = one_line(PQerrorMessage(conn_));
				return out;
			}
		}
		PGresult *r = PQgetResult(conn_);
		if (!r)
			break;
		last.reset(r); /* keep the last result; a statement gives one, then NULL */
	}

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
	out.error = one_line(PQresultErrorMessage(last.get()));
	out.status = PQstatus(conn_) == CONNECTION_BAD ? DbStatus::ConnLost : DbStatus::Error;
	out.res = std::move(last);
	return out;
}

} // namespace livenotify
