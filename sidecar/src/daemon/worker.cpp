/*
 * worker.cpp: see worker.hpp.
 */
#include "worker.hpp"

#include "backoff.hpp"
#include "db.hpp"
#include "db_health.hpp"
#include "log.hpp"
#include "primary.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace livenotify
{

/* Any database thread, on its own connection. */
bool
load_sources(PgConn &conn, std::unordered_map<std::string, SourceInfo> *cache, std::string *err)
{
	/* The user column's type too: the daemon checks that a token's subject is a canonical key. */
	QueryResult r = conn.query(
		"SELECT s.source, s.id_column::text, s.read_column::text, a.atttypid::regtype::text, "
		"a.atttypmod FROM livenotify.sources s LEFT JOIN pg_catalog.pg_attribute a "
		"ON a.attrelid = s.relid AND a.attname = s.user_column AND NOT a.attisdropped",
		{});
	if (!r.ok())
	{
		*err = r.error;
		return false;
	}
	cache->clear();
	for (int i = 0; i < r.rows(); i++)
	{
		SourceInfo si;
		if (!r.is_null(i, 1))
			si.id_column = r.text(i, 1);
		si.has_read_column = !r.is_null(i, 2);
		if (!r.is_null(i, 3))
			si.user_key_type = user_key_type(r.text(i, 3), std::atoi(r.text(i, 4).c_str()));
		(*cache)[r.text(i, 0)] = si;
	}
	return true;
}

namespace
{

class Worker
{
public:
	Worker(Shared *sh, int index)
		: sh_(sh), index_(index), conn_(sh->stop_fd),
		  backoff_(sh->cfg.reconnect_min_ms, sh->cfg.reconnect_max_ms)
	{
		conn_.set_timeout_ms(sh->cfg.db_timeout_ms);
	}

	~Worker()
	{
		set_failing(false, "");
	}

	void run()
	{
		Job job;
		for (;;)
		{
			/*
			 * A failing worker probes the database itself once its delay is
			 * over, so that /healthz recovers without waiting for a resume
			 * (a daemon taken out of rotation gets none).
			 */
			int64_t wait_ms = -1;
			if (failing_)
				wait_ms =
					std::max<int64_t>(10, std::chrono::duration_cast<std::chrono::milliseconds>(
											  next_attempt_ - std::chrono::steady_clock::now())
											  .count());
			JobQueue::Pop got = sh_->jobs.pop_for(&job, sh_->stopping, wait_ms);
			if (got == JobQueue::Pop::Stopping)
				break;
			if (got == JobQueue::Pop::TimedOut)
				query("SELECT 1", {});
			else if (job.type == Job::Type::AuthSql)
				auth(job);
			else
			{
				catchup(job);
				sh_->jobs.catchup_done();
			}
		}
		conn_.close();
	}

private:
	/*
	 * Connect if needed.  A job never waits out a long backoff: when the
	 * database is down the job fails at once (the client retries), and the
	 * backoff only spaces out connection attempts between jobs.
	 */
	bool ensure_connected()
	{
		if (conn_.connected())
			return true;
		auto now = std::chrono::steady_clock::now();
		if (now < next_attempt_)
			return false;
		std::string err;
		std::string name = "livenotifyd worker " + std::to_string(index_);
		if (!conn_.connect(sh_->cfg.database_url, name, &err))
		{
			if (sh_->stopping.load())
				return false;
			sh_->counters.db_connect_failures_worker.fetch_add(1, std::memory_order_relaxed);
			set_failing(true, failure_summary(DbFailure::Connect, ""));
			delay_next_attempt(now);
			LOG_WARN("db_connect_failed", "thread=worker%d error=%s retry_ms=%lld", index_,
					 log_error_text(err).c_str(),
					 static_cast<long long>(
						 std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now)
							 .count()));
			return false;
		}
		if (ever_connected_)
			sh_->counters.db_reconnects.fetch_add(1, std::memory_order_relaxed);
		/*
		 * Catch-up and counts read on a standby lag the primary (rows the
		 * live stream already delivered would be missing): refuse it like
		 * the reader does (primary.hpp).  The backoff grows meanwhile.
		 */
		QueryResult role_failed;
		ServerRole role = server_role(conn_, &role_failed);
		if (role != ServerRole::Primary)
		{
			bool standby = role == ServerRole::Standby;
			if (standby)
				sh_->counters.db_standby.fetch_add(1, std::memory_order_relaxed);
			else
				sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			set_failing(true, failure_summary(standby ? DbFailure::Standby : DbFailure::Error, ""));
			delay_next_attempt(now);
			LOG_ERROR(standby ? "db_standby" : "db_setup_failed",
					  "thread=worker%d server=%s error=%s retry_ms=%lld", index_,
					  log_quote(conn_.server()).c_str(),
					  log_error_text(standby ? kStandbyError : role_failed.error).c_str(),
					  static_cast<long long>(
						  std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now)
							  .count()));
			conn_.close();
			return false;
		}
		ever_connected_ = true;
		/*
		 * The server ends a statement past db_timeout_ms itself (a slow
		 * catch-up); the client-side deadline (db.hpp) covers a backend that
		 * cannot even do that (frozen, partitioned).  The backoff is reset by
		 * a successful statement, not by the connect.
		 */
		QueryResult st = conn_.query("SELECT set_config('statement_timeout', $1, false)",
									 {std::to_string(sh_->cfg.db_timeout_ms)});
		if (!st.ok())
			LOG_WARN("statement_timeout_failed", "thread=worker%d error=%s", index_,
					 log_error_text(st.error).c_str());
		if (!load_sources(conn_, &sources_, &err))
			LOG_WARN("sources_failed", "thread=worker%d error=%s", index_,
					 log_error_text(err).c_str());
		LOG_INFO("db_connected", "thread=worker%d", index_);
		return true;
	}

	/*
	 * Run a query, reconnecting once if the connection turned out to be dead
	 * (not after a time-out: that already took db_timeout_ms).  Its outcome
	 * is this worker's health: a lost or hung session, or an error that
	 * retrying will not cure, marks it failing until a statement succeeds.
	 */
	QueryResult query(const char *sql, const std::vector<std::optional<std::string>> &params)
	{
		for (int attempt = 0; attempt < 2; attempt++)
		{
			if (!ensure_connected())
				break;
			QueryResult r = conn_.query(sql, params);
			if (r.status == DbStatus::TimedOut)
			{
				sh_->counters.db_timeouts_worker.fetch_add(1, std::memory_order_relaxed);
				LOG_WARN("db_timeout", "thread=worker%d error=%s", index_,
						 log_error_text(r.error).c_str());
			}
			if (r.status != DbStatus::ConnLost)
			{
				note_outcome(r);
				return r;
			}
			conn_.close();
			note_outcome(r);
		}
		QueryResult r;
		r.status = DbStatus::ConnLost;
		r.error = "database unavailable";
		return r;
	}

	void note_outcome(const QueryResult &r)
	{
		bool persistent = r.status == DbStatus::Error && persistent_sqlstate(r.sqlstate);
		if (persistent)
			sh_->counters.db_persistent_errors_worker.fetch_add(1, std::memory_order_relaxed);
		if (r.session_gone() || persistent)
		{
			if (r.status == DbStatus::Interrupted)
				return;
			set_failing(true, failure_summary(r.status == DbStatus::TimedOut   ? DbFailure::TimedOut
											  : r.status == DbStatus::ConnLost ? DbFailure::ConnLost
																			   : DbFailure::Error,
											  r.sqlstate));
			delay_next_attempt(std::chrono::steady_clock::now());
		}
		else
		{
			set_failing(false, "");
			backoff_.reset();
		}
	}

	void delay_next_attempt(std::chrono::steady_clock::time_point now)
	{
		next_attempt_ = now + std::chrono::milliseconds(backoff_.next());
	}

	void set_failing(bool failing, const std::string &error)
	{
		if (failing == failing_)
			return;
		failing_ = failing;
		sh_->health.worker_changed(failing, error);
	}

	void auth(const Job &job)
	{
		Event e;
		e.type = Event::Type::AuthResult;
		e.session = job.session;
		/* The configured query is parameterised: the token is only ever $1, never spliced into SQL.
		 */
		QueryResult r = query(sh_->cfg.auth_query.c_str(), {job.token});
		if (!r.ok())
		{
			sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			e.unavailable = r.status != DbStatus::Error;
			e.reason = e.unavailable ? "database_unavailable" : "auth_query_failed";
			if (r.status == DbStatus::Error)
				LOG_ERROR("auth_query_failed", "error=%s", log_error_text(r.error).c_str());
		}
		else if (r.rows() < 1 || r.is_null(0, 0) || r.view(0, 0).empty())
			e.reason = "unknown_token";
		else
		{
			e.ok = true;
			e.user = r.text(0, 0);
		}
		sh_->inbox.post(std::move(e), sh_->ctx);
	}

	/*
	 * One page of a resume: the rows after job.after_id, at most job.max_rows
	 * (the service thread asks for the next page as the socket drains, see
	 * resume.hpp).  One row more than asked tells whether rows remain.
	 */
	void catchup(const Job &job)
	{
		Event e;
		e.type = Event::Type::CatchupResult;
		e.session = job.session;
		e.user = job.user;

		auto si = sources_.find(job.source);
		if (si == sources_.end() && ensure_connected())
		{
			std::string err;
			load_sources(conn_, &sources_, &err);
			si = sources_.find(job.source);
		}
		bool has_read = si != sources_.end() && si->second.has_read_column;

		/* Last check before the query: the socket may have gone while this job waited. */
		if (job.dead())
		{
			sh_->counters.catchup_jobs_dropped.fetch_add(1, std::memory_order_relaxed);
			return;
		}
		sh_->counters.catchup_jobs_run.fetch_add(1, std::memory_order_relaxed);
		size_t limit = job.max_rows;
		QueryResult r;
		if (job.cursor)
		{
			/* The ids are digits (Cursor::parse), so the array literal needs no quoting. */
			std::string had = "{";
			for (size_t i = 0; i < job.cursor->had.size(); i++)
				had += (i ? "," : "") + std::to_string(job.cursor->had[i]);
			had += "}";
			r = query("SELECT id, payload FROM livenotify.catchup_cursor($1, $2, $3::xid8, "
					  "$4::bigint[], $5, $6)",
					  {job.source, job.user, std::to_string(job.cursor->horizon), had,
					   std::to_string(job.after_id), std::to_string(limit + 1)});
		}
		else
			r = query(
				"SELECT id, payload FROM livenotify.catchup($1, $2, $3, $4)",
				{job.source, job.user, std::to_string(job.after_id), std::to_string(limit + 1)});
		if (!r.ok())
		{
			sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			LOG_WARN("catchup_failed", "user=%s error=%s", log_quote(job.user).c_str(),
					 log_error_text(r.error).c_str());
			e.failed = true;
			sh_->inbox.post(std::move(e), sh_->ctx);
			return;
		}

		/*
		 * The count as of the resume, spliced into every replayed frame (the
		 * client shows the latest; held live frames follow with newer counts).
		 * Queried with the first page that has rows, then carried by the jobs.
		 */
		std::optional<int64_t> count = job.unread;
		bool count_known = job.count_known;
		if (!count_known && has_read && r.rows() > 0)
		{
			QueryResult c = query("SELECT unread FROM livenotify.unread_counts($1, ARRAY[$2])",
								  {job.source, job.user});
			if (c.ok() && c.rows() > 0 && !c.is_null(0, 0))
				count = c.integer(0, 0);
			else
			{
				/* The replayed frames say so (unread_count_error); the next page asks again. */
				sh_->counters.unread_count_errors.fetch_add(1, std::memory_order_relaxed);
				LOG_WARN("unread_counts_failed", "thread=worker%d user=%s error=%s", index_,
						 log_quote(job.user).c_str(), log_error_text(c.error).c_str());
				e.count_error = true;
			}
		}
		e.unread = count;

		size_t n = static_cast<size_t>(r.rows());
		if (n > limit)
		{
			e.more = true;
			n = limit;
		}
		e.rows.reserve(n);
		/* Each replayed frame's cursor: the client's, with the rows replayed so far listed. */
		std::optional<Cursor> cursor = job.cursor;
		for (size_t i = 0; i < n; i++)
		{
			int row_no = static_cast<int>(i);
			int64_t id = r.integer(row_no, 0);
			std::string_view row =
				r.is_null(row_no, 1) ? std::string_view("null") : r.view(row_no, 1);
			std::string stamp;
			if (cursor)
			{
				cursor->add_had(id);
				stamp = cursor->encode();
			}
			e.rows.emplace_back(id, make_notification_frame(job.source, id, row, count,
															sh_->headroom, stamp, e.count_error));
		}
		sh_->counters.catchup_rows.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
		sh_->inbox.post(std::move(e), sh_->ctx);
	}

	Shared *sh_;
	int index_;
	PgConn conn_;
	Backoff backoff_;
	std::chrono::steady_clock::time_point next_attempt_{};
	bool ever_connected_ = false;
	bool failing_ = false; /* counted in sh_->health while true */
	std::unordered_map<std::string, SourceInfo> sources_;
};

} // namespace

/* Worker thread entry point. */
void
run_worker(Shared *shared, int index)
{
	Worker w(shared, index);
	w.run();
	LOG_INFO("thread_stopped", "thread=worker%d", index);
}

} // namespace livenotify
