/*
 * reader.cpp: see reader.hpp.
 */
#include "reader.hpp"

#include "backoff.hpp"
#include "coalesce.hpp"
#include "cursor.hpp"
#include "db.hpp"
#include "db_health.hpp"
#include "log.hpp"
#include "primary.hpp"
#include "unread_cache.hpp"
#include "worker.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <poll.h>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace livenotify
{

namespace
{

struct Entry
{
	int64_t seq;
	std::string source;
	std::string user; /* empty with !has_user */
	bool has_user = true;
	std::string kind;
	std::optional<std::string> payload;
	uint64_t xid = 0;	 /* committing transaction; 0 unknown */
	bool unread = false; /* a notification whose row counts as unread */
};

/* Sleep ms or until shutdown; false when shutting down. */
bool
sleep_or_stop(Shared *sh, int64_t ms)
{
	struct pollfd p = {sh->stop_fd, POLLIN, 0};
	int n = poll(&p, 1, static_cast<int>(ms));
	return !(n > 0 || sh->stopping.load());
}

/* The same to the microsecond (the coalescing wait is below poll()'s millisecond). */
void
sleep_us_or_stop(Shared *sh, std::chrono::microseconds us)
{
	struct pollfd p = {sh->stop_fd, POLLIN, 0};
	struct timespec ts = {static_cast<time_t>(us.count() / 1000000),
						  static_cast<long>(us.count() % 1000000) * 1000};
	ppoll(&p, 1, &ts, nullptr);
}

void
broadcast_resync(Shared *sh, const char *reason)
{
	sh->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
	Event e;
	e.type = Event::Type::Broadcast;
	e.frame = make_resync_frame(reason, sh->headroom);
	sh->inbox.post(std::move(e), sh->ctx);
	LOG_WARN("resync", "reason=%s", reason);
}

/*
 * The resume source: the configured one, else the only registered source.
 * Several sources and none configured: resume is refused (clients get resync).
 */
void
resolve_resume_source(Shared *sh, const std::unordered_map<std::string, SourceInfo> &sources)
{
	/* Called after every load of the sources: publish their user key types as well. */
	std::vector<UserKeyType> types;
	for (const auto &kv : sources)
		types.push_back(kv.second.user_key_type);
	sh->set_user_key_types(std::move(types));

	if (!sh->cfg.source.empty())
	{
		if (!sources.count(sh->cfg.source))
			LOG_WARN("source_unknown", "source=%s hint=\"not in livenotify.sources\"",
					 log_quote(sh->cfg.source).c_str());
		sh->set_resume_source(sh->cfg.source);
		return;
	}
	if (sources.size() == 1)
		sh->set_resume_source(sources.begin()->first);
	else
	{
		sh->set_resume_source("");
		LOG_WARN("source_ambiguous", "registered=%zu hint=\"set source= for resume\"",
				 sources.size());
	}
}

class Reader
{
public:
	explicit Reader(Shared *sh)
		: sh_(sh), conn_(sh->stop_fd), backoff_(sh->cfg.reconnect_min_ms, sh->cfg.reconnect_max_ms),
		  cache_(std::chrono::milliseconds(sh->cfg.unread_cache_ttl_ms)),
		  coalesce_(std::chrono::microseconds(sh->cfg.read_coalesce_us))
	{
		conn_.set_timeout_ms(sh->cfg.db_timeout_ms);
	}

	void run()
	{
		while (!sh_->stopping.load())
		{
			if (!conn_.connected() && !connect())
				continue;
			/*
			 * Backpressure (shared.hpp, kInboxMaxBytes): while the service
			 * thread still has that much to hand out, the rows wait in the
			 * ring.  In steps, so that a shutdown is seen.
			 */
			if (!sh_->inbox.wait_below(kInboxMaxBytes, std::chrono::milliseconds(100)))
			{
				sh_->counters.reader_inbox_waits.fetch_add(1, std::memory_order_relaxed);
				continue;
			}
			if (!read_once())
				disconnect();
			else if (wait_next_)
			{
				/* Coalescing (core/coalesce.hpp): let the stream fill the next batch. */
				sh_->counters.coalesce_waits.fetch_add(1, std::memory_order_relaxed);
				sleep_us_or_stop(sh_, coalesce_.window());
			}
		}
		conn_.close();
	}

private:
	bool connect()
	{
		std::string err;
		if (!conn_.connect(sh_->cfg.database_url, "livenotifyd reader", &err))
		{
			if (sh_->stopping.load())
				return false;
			sh_->counters.db_connect_failures_reader.fetch_add(1, std::memory_order_relaxed);
			sh_->health.reader_failed(failure_summary(DbFailure::Connect, ""));
			int64_t delay = backoff_.next();
			LOG_WARN("db_connect_failed", "thread=reader error=%s retry_ms=%lld",
					 log_error_text(err).c_str(), static_cast<long long>(delay));
			sleep_or_stop(sh_, delay);
			return false;
		}
		if (ever_connected_)
			sh_->counters.db_reconnects.fetch_add(1, std::memory_order_relaxed);
		/* The first read() of a session does not wait: it proves the session works at once. */
		fresh_session_ = true;

		/* Before anything is read from it: a standby's queue is not the primary's (primary.hpp). */
		QueryResult role_failed;
		ServerRole role = server_role(conn_, &role_failed);
		if (role == ServerRole::Standby)
			return refuse_standby();
		if (role == ServerRole::Unknown)
			return fail_setup("pg_is_in_recovery", role_failed);

		/*
		 * read() waits on its latch up to read_timeout_ms by design; a
		 * database-wide statement_timeout shorter than that would turn every
		 * quiet period into an error, so this session opts out.
		 */
		QueryResult st = conn_.query("SELECT set_config('statement_timeout', '0', false)", {});
		if (!st.ok())
			return fail_setup("statement_timeout", st);

		/*
		 * read() runs for every batch, thousands of times a second under load:
		 * prepared once per session, it is not parsed and planned each time.
		 */
		QueryResult prep = conn_.prepare(kReadStatement, "SELECT epoch, seq, lost, source, "
														 "user_key, kind, payload, xid, unread "
														 "FROM livenotify.read($1, $2, $3)");
		if (!prep.ok())
			return fail_setup("prepare read", prep);

		/*
		 * Resume cursors need read_horizon() after each read and the
		 * database's origin.  Without them (grants missing, an extension
		 * older than 0.2) frames carry no cursor and clients resume by id.
		 */
		QueryResult hp = conn_.prepare(kHorizonStatement, "SELECT xmin::text, xmax::text "
														  "FROM livenotify.read_horizon()");
		QueryResult org =
			hp.ok() ? conn_.query("SELECT system_identifier, timeline FROM livenotify.origin()", {})
					: std::move(hp);
		std::string origin;
		if (org.ok() && org.rows() == 1 && !org.is_null(0, 0) && !org.is_null(0, 1))
		{
			origin_system_ = org.text(0, 0);
			timeline_ = org.integer(0, 1);
			origin = origin_system_ + "." + std::to_string(timeline_);
		}
		else
			LOG_WARN("cursors_off",
					 "error=%s hint=\"grant livenotify.read_horizon() and "
					 "livenotify.origin() to the daemon's role\"",
					 log_error_text(org.error).c_str());
		cursors_ = !origin.empty();
		if (origin != sh_->origin())
		{
			/* Another history (or the first connection): no horizon or listed id carries over. */
			book_.clear();
			base_x_.reset();
		}
		sh_->set_origin(origin);

		if (!load_sources(conn_, &sources_, &err))
		{
			QueryResult failed;
			failed.error = err;
			return fail_setup("sources", failed);
		}
		resolve_resume_source(sh_, sources_);

		QueryResult pos = conn_.query("SELECT epoch, last_seq FROM livenotify.position()", {});
		if (!pos.ok() || pos.rows() != 1)
			return fail_setup("position", pos);
		int64_t epoch = pos.integer(0, 0);
		int64_t last = pos.integer(0, 1);

		if (!ever_connected_)
		{
			/* First connection: deliver what commits from now on; older rows come from catch-up. */
			after_ = last;
			if (!prime())
				return fail_setup("first read", last_failure_);
			/*
			 * Sockets accepted before this (hello with epoch 0) may have missed
			 * rows committed meanwhile, except those whose resume waits for
			 * this position: their catch-up runs after it, so every row is in
			 * the catch-up or in the live stream from here.  The service
			 * thread sorts them out on ReaderReady (before any frame of ours,
			 * which follow in the inbox): catch-up for the waiting resumes,
			 * resync `epoch` for the other sockets that were already open.
			 */
			sh_->reader_positioned.store(true);
			Event ready;
			ready.type = Event::Type::ReaderReady;
			sh_->inbox.post(std::move(ready), sh_->ctx);
		}
		else if (epoch != epoch_)
		{
			/* The server restarted: the ring and its numbering are new, we may have missed entries.
			 */
			after_ = last;
			if (!prime())
				return fail_setup("first read", last_failure_);
			broadcast_resync(sh_, "epoch");
		}
		else if (after_ > last)
		{
			after_ = last;
			if (!prime())
				return fail_setup("first read", last_failure_);
			broadcast_resync(sh_, "position");
		}
		/* else: same epoch, continue after our position; read() reports a gap as a 'lost' row. */
		epoch_ = epoch;
		sh_->epoch.store(epoch);
		sh_->counters.last_seq.store(after_);
		/*
		 * Not up yet, and the backoff is not reset: a session that connects
		 * and then fails every read() (EXECUTE revoked) would otherwise
		 * reconnect at the shortest delay forever and flap /healthz.  Both
		 * wait for a successful read (read_succeeded()).
		 */
		ever_connected_ = true;
		LOG_INFO("db_connected", "thread=reader epoch=%lld after=%lld sources=%zu",
				 static_cast<long long>(epoch), static_cast<long long>(after_), sources_.size());
		return true;
	}

	/*
	 * Starting afresh at after_: read to the end of the ring once, without
	 * delivering (what commits up to here is catch-up's, or resync's), so the
	 * first batch has a horizon below which every row is accounted for.
	 */
	bool prime()
	{
		/*
		 * Up to the whole ring in one answer (tens of MB on a large ring):
		 * it gets the allowance of a waiting read() on top of db_timeout_ms.
		 */
		QueryResult r = conn_.exec_prepared(kReadStatement, {std::to_string(after_), "100000", "0"},
											sh_->cfg.read_timeout_ms);
		if (!r.ok())
		{
			last_failure_ = std::move(r);
			return false;
		}
		for (int i = 0; i < r.rows(); i++)
			if (!r.is_null(i, 1))
				after_ = std::max<int64_t>(after_, r.integer(i, 1));
		if (cursors_)
		{
			std::optional<Horizon> h;
			if (!fetch_horizon(&h))
				return false;
			if (h)
				base_x_ = h->xmin;
		}
		read_succeeded();
		return true;
	}

	/*
	 * A read() answered: the database works for us.  Only now is the reader
	 * up and the backoff reset (a connect alone proves nothing).
	 */
	void read_succeeded()
	{
		sh_->health.read_ok(DbHealth::Clock::now());
		sh_->counters.db_up.store(1);
		backoff_.reset();
		fresh_session_ = false;
	}

	/* Count a failed call in the metrics and keep its text for /healthz; true if persistent. */
	bool count_failure(const QueryResult &r)
	{
		sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
		if (r.status == DbStatus::TimedOut)
			sh_->counters.db_timeouts_reader.fetch_add(1, std::memory_order_relaxed);
		bool persistent = persistent_sqlstate(r.sqlstate);
		if (persistent)
			sh_->counters.db_persistent_errors_reader.fetch_add(1, std::memory_order_relaxed);
		sh_->health.reader_failed(
			failure_summary(r.status == DbStatus::TimedOut	 ? DbFailure::TimedOut
							: r.status == DbStatus::ConnLost ? DbFailure::ConnLost
															 : DbFailure::Error,
							r.sqlstate));
		return persistent;
	}

	struct Horizon
	{
		uint64_t xmin;
		uint64_t xmax;
	};

	/* read_horizon() of the read just made: *out nullopt when it did not reach the end. */
	bool fetch_horizon(std::optional<Horizon> *out)
	{
		return take_horizon(conn_.exec_prepared(kHorizonStatement, {}), out);
	}

	/* The answer of read_horizon(): false when the session is gone. */
	bool take_horizon(QueryResult h, std::optional<Horizon> *out)
	{
		out->reset();
		if (!h.ok())
		{
			if (h.session_gone())
			{
				last_failure_ = std::move(h);
				return false;
			}
			LOG_WARN("read_horizon_failed", "error=%s", log_error_text(h.error).c_str());
			return true;
		}
		if (h.rows() == 1 && !h.is_null(0, 0) && !h.is_null(0, 1))
			*out = Horizon{std::strtoull(h.text(0, 0).c_str(), nullptr, 10),
						   std::strtoull(h.text(0, 1).c_str(), nullptr, 10)};
		return true;
	}

	bool fail_setup(const char *what, const QueryResult &r)
	{
		if (r.status == DbStatus::Interrupted)
		{
			conn_.close();
			return false;
		}
		bool persistent = count_failure(r);
		int64_t delay = backoff_.next();
		LOG_ERROR("db_setup_failed",
				  "thread=reader step=%s sqlstate=%s persistent=%d timed_out=%d error=%s "
				  "retry_ms=%lld",
				  what, r.sqlstate.empty() ? "-" : r.sqlstate.c_str(), persistent,
				  r.status == DbStatus::TimedOut, log_error_text(r.error).c_str(),
				  static_cast<long long>(delay));
		conn_.close();
		sh_->counters.db_up.store(0);
		sleep_or_stop(sh_, delay);
		return false;
	}

	/*
	 * The session reached a server in recovery: drop it and retry with a
	 * growing delay (the backoff is not reset: nothing was read), /healthz
	 * 503 meanwhile.  A multi-host URL gets target_session_attrs=read-write
	 * (conninfo.hpp), so libpq itself skips a standby; a single host, or a
	 * URL asking for any, lands here until the server is promoted.
	 */
	bool refuse_standby()
	{
		sh_->counters.db_standby.fetch_add(1, std::memory_order_relaxed);
		sh_->counters.db_up.store(0);
		sh_->health.reader_failed(failure_summary(DbFailure::Standby, ""));
		int64_t delay = backoff_.next();
		LOG_ERROR("db_standby", "thread=reader server=%s error=%s retry_ms=%lld",
				  log_quote(conn_.server()).c_str(), log_error_text(kStandbyError).c_str(),
				  static_cast<long long>(delay));
		conn_.close();
		sleep_or_stop(sh_, delay);
		return false;
	}

	void disconnect()
	{
		conn_.close();
		sh_->counters.db_up.store(0);
		/*
		 * Entries may be lost while we are away (ring overwritten, server
		 * restarted): counts are fetched again rather than trusted.
		 */
		cache_.clear();
	}

	/* One read() round trip and its batch; false when the connection must be dropped. */
	bool read_once()
	{
		/*
		 * The wait is bounded: read() returns by read_timeout_ms, the call by
		 * that plus db_timeout_ms (db.hpp); past it the backend is taken for
		 * hung, cancelled and dropped.
		 */
		int wait_ms = fresh_session_ ? 0 : sh_->cfg.read_timeout_ms;
		std::vector<std::optional<std::string>> args = {
			std::to_string(after_), std::to_string(sh_->cfg.read_batch), std::to_string(wait_ms)};
		/*
		 * With cursors, read_horizon() must describe this read: it goes in the
		 * same round trip and runs the moment read() returns (libpq pipeline
		 * mode), one wake-up of the backend and of this thread per batch
		 * instead of two (issue 15).
		 */
		QueryResult h;
		QueryResult r = cursors_ ? conn_.exec_prepared_then(kReadStatement, args, wait_ms,
															kHorizonStatement, &h)
								 : conn_.exec_prepared(kReadStatement, args, wait_ms);
		if (r.status == DbStatus::Interrupted)
			return false;
		if (!r.ok())
		{
			bool persistent = count_failure(r);
			/*
			 * The session is still up: ask whether the server went into
			 * recovery, so the log says so rather than only read()'s error.
			 */
			QueryResult role_failed;
			if (r.status == DbStatus::Error &&
				server_role(conn_, &role_failed) == ServerRole::Standby)
			{
				/* Dropped like any failed read: disconnect() forgets the counts too. */
				refuse_standby();
				return false;
			}
			int64_t delay = backoff_.next();
			LOG_ERROR("db_read_failed",
					  "sqlstate=%s persistent=%d conn_lost=%d timed_out=%d error=%s retry_ms=%lld",
					  r.sqlstate.empty() ? "-" : r.sqlstate.c_str(), persistent,
					  r.status == DbStatus::ConnLost, r.status == DbStatus::TimedOut,
					  log_error_text(r.error).c_str(), static_cast<long long>(delay));
			sh_->counters.db_up.store(0);
			sleep_or_stop(sh_, delay);
			/* Reconnecting re-reads position() and sorts out an epoch change or a bad position. */
			return false;
		}
		read_succeeded();
		int n = r.rows();
		wait_next_ = coalesce_.after_read(n, sh_->cfg.read_batch, Coalescer::Clock::now());
		if (n == 0)
			return true;
		sh_->counters.read_batches.fetch_add(1, std::memory_order_relaxed);
		/* Taken with the read, before the session ran anything else: it describes this read. */
		std::optional<Horizon> horizon;
		if (cursors_ && !take_horizon(std::move(h), &horizon))
			return false;

		std::vector<Entry> entries;
		std::set<std::string> overflow_sources; /* "*": every source */
		entries.reserve(static_cast<size_t>(n));
		for (int i = 0; i < n; i++)
		{
			int64_t epoch = r.integer(i, 0);
			int64_t seq = r.integer(i, 1);
			if (epoch != epoch_)
			{
				epoch_ = epoch;
				sh_->epoch.store(epoch);
				broadcast_resync(sh_, "epoch");
				forget_all_counts();
			}
			std::string kind = r.is_null(i, 5) ? "" : r.text(i, 5);
			if (kind == "lost")
			{
				long long lost = r.integer(i, 2);
				sh_->counters.lost_entries.fetch_add(static_cast<uint64_t>(lost),
													 std::memory_order_relaxed);
				LOG_WARN("entries_lost", "count=%lld up_to_seq=%lld", lost,
						 static_cast<long long>(seq));
				broadcast_resync(sh_, "lost");
				/* Whatever was lost may have changed counts, or re-registered a source. */
				forget_all_counts();
			}
			else if (kind == "overflow")
			{
				/*
				 * A transaction went past livenotify.max_pending: its entries
				 * of this source (NULL: of every source) collapsed into this
				 * one.  We cannot tell whose they were: every socket resyncs,
				 * once per batch however many sources overflowed.
				 */
				sh_->counters.overflows.fetch_add(1, std::memory_order_relaxed);
				if (r.is_null(i, 3))
					overflow_sources.insert("*");
				else
					overflow_sources.insert(r.text(i, 3));
			}
			else if (!r.is_null(i, 4) || (kind == "unread_count" && !r.is_null(i, 3)))
			{
				/* A user-less unread_count is a TRUNCATE of its source. */
				Entry e;
				e.seq = seq;
				e.source = r.is_null(i, 3) ? "" : r.text(i, 3);
				e.has_user = !r.is_null(i, 4);
				if (e.has_user)
					e.user = r.text(i, 4);
				e.kind = std::move(kind);
				if (!r.is_null(i, 6))
					e.payload = r.text(i, 6);
				if (!r.is_null(i, 7))
					e.xid = std::strtoull(r.text(i, 7).c_str(), nullptr, 10);
				e.unread = !r.is_null(i, 8) && r.text(i, 8) == "t";
				entries.push_back(std::move(e));
			}
			if (seq > after_)
				after_ = seq;
		}
		if (!overflow_sources.empty())
		{
			std::string names;
			for (const auto &src : overflow_sources)
				names += (names.empty() ? "" : ",") + src;
			LOG_WARN("transaction_overflow", "sources=%s hint=\"%s\"", log_quote(names).c_str(),
					 "a transaction went past livenotify.max_pending");
			broadcast_resync(sh_, "overflow");
			/* Its rows changed counts nobody was told about. */
			if (overflow_sources.count("*"))
				forget_all_counts();
			else
				for (const auto &src : overflow_sources)
					cache_.forget_source(src);
		}
		sh_->counters.entries_read.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
		sh_->counters.last_seq.store(after_);
		/* Rows of this batch lie below its xmax; its xmin is the base of the next batch. */
		batch_expiry_ = horizon ? horizon->xmax : UINT64_MAX;
		deliver(entries);
		if (horizon)
			base_x_ = horizon->xmin;
		return true;
	}

	/*
	 * The name of this session's prepared counting statement for a source,
	 * prepared on first use from livenotify.unread_counts_query(); empty when
	 * that failed (then unread_counts() is used until the source changes or
	 * the session ends).  unread_counts() is PL/pgSQL that plans its EXECUTE
	 * on every call; the prepared statement skips that planning.  A source
	 * registered again (perhaps on another read or user column) queues an
	 * entry that drops the statement (source_changed()); a table change that
	 * breaks it makes it fail, and fetch_counts() drops it then.
	 */
	std::string counts_statement(const std::string &source)
	{
		if (prepared_generation_ != conn_.generation())
		{
			/* A new session: the statements of the previous one are gone with it. */
			prepared_.clear();
			prepared_generation_ = conn_.generation();
		}
		auto it = prepared_.find(source);
		if (it != prepared_.end())
			return it->second;
		std::string name;
		QueryResult q = conn_.query("SELECT livenotify.unread_counts_query($1)", {source});
		if (q.ok() && q.rows() == 1 && !q.is_null(0, 0))
		{
			/* A fresh name each time: one dropped after an error may still exist. */
			std::string candidate = "livenotify_counts_" + std::to_string(++statement_seq_);
			/* The snapshot the rows were counted in, for the cache (same statement, same snapshot).
			 */
			std::string sql =
				"SELECT c.user_key, c.unread, s.snap FROM (" + q.text(0, 0) +
				") AS c, (SELECT pg_catalog.pg_current_snapshot()::text AS snap) AS s";
			QueryResult p = conn_.prepare(candidate, sql);
			if (p.ok())
				name = candidate;
			else
				q = std::move(p);
		}
		if (name.empty())
			LOG_WARN("unread_counts_prepare_failed", "source=%s error=%s fallback=unread_counts",
					 log_quote(source).c_str(), log_error_text(q.error).c_str());
		if (q.status == DbStatus::Ok || q.status == DbStatus::Error)
			prepared_[source] = name; /* not cached when the session is lost */
		return name;
	}

	/*
	 * Counts for the active users of one source: ONE counting statement,
	 * which also returns the snapshot it counted in (see unread_cache.hpp).
	 * Each count goes into out and into the cache.  False when the counting
	 * failed: the frames of these users then say so (unread_count_error).
	 */
	bool fetch_counts(const std::string &source, const std::vector<std::string> &users,
					  UnreadCache::Clock::time_point now,
					  std::unordered_map<std::string, int64_t> *out)
	{
		for (const auto &u : users)
			cache_.forget(source, u); /* stale whether or not the fetch succeeds */
		/* The user array travels as a JSON parameter so no SQL array literal is built by hand. */
		nlohmann::json arr = users;
		std::string keys = arr.dump();
		QueryResult r;
		std::string name = counts_statement(source);
		if (!name.empty())
		{
			r = conn_.exec_prepared(name, {keys});
			if (r.status == DbStatus::Error)
			{
				/*
				 * The statement no longer fits the table (source registered
				 * again, column dropped or retyped): drop it, prepare again on
				 * the next batch, and count this one the slow way.
				 */
				LOG_WARN("unread_counts_prepared_failed", "source=%s error=%s",
						 log_quote(source).c_str(), log_error_text(r.error).c_str());
				drop_statement(source);
				name.clear();
			}
		}
		/* unread_counts() is STABLE: it counts in the calling statement's snapshot. */
		if (name.empty() && !r.session_gone())
			r = conn_.query("SELECT user_key, unread, pg_catalog.pg_current_snapshot()::text "
							"FROM livenotify.unread_counts($1, "
							"ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
							{source, keys});
		if (!r.ok())
		{
			sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			sh_->counters.unread_count_errors.fetch_add(1, std::memory_order_relaxed);
			if (r.status == DbStatus::TimedOut)
				sh_->counters.db_timeouts_reader.fetch_add(1, std::memory_order_relaxed);
			LOG_WARN("unread_counts_failed", "source=%s users=%zu sqlstate=%s error=%s",
					 log_quote(source).c_str(), users.size(),
					 r.sqlstate.empty() ? "-" : r.sqlstate.c_str(),
					 log_error_text(r.error).c_str());
			return false;
		}
		sh_->counters.unread_counts_fetched.fetch_add(users.size(), std::memory_order_relaxed);
		std::shared_ptr<const PgSnapshot> snap;
		if (r.rows() > 0 && !r.is_null(0, 2))
			if (auto s = PgSnapshot::parse(r.text(0, 2)))
				snap = std::make_shared<const PgSnapshot>(std::move(*s));
		for (int i = 0; i < r.rows(); i++)
			if (!r.is_null(i, 0) && !r.is_null(i, 1))
			{
				std::string user = r.text(i, 0);
				int64_t n = r.integer(i, 1);
				(*out)[user] = n;
				cache_.put(source, user, n, snap, now);
			}
		return true;
	}

	/*
	 * Every count of a source may have changed: TRUNCATE, or the source was
	 * registered again (perhaps on another read, user or id column).  Drop its
	 * counts and its counting statement, and read the catalog again.
	 */
	void source_changed(const std::string &source)
	{
		cache_.forget_source(source);
		drop_statement(source);
		if (!refreshed_this_batch_)
		{
			refreshed_this_batch_ = true;
			std::string err;
			if (load_sources(conn_, &sources_, &err))
				resolve_resume_source(sh_, sources_);
		}
	}

	/* Entries were missed: no cached count, and no counting statement, can be trusted. */
	void forget_all_counts()
	{
		cache_.clear();
		while (!prepared_.empty())
			drop_statement(prepared_.begin()->first);
	}

	/* Forget a source's counting statement, deallocating it if it is this session's. */
	void drop_statement(const std::string &source)
	{
		auto it = prepared_.find(source);
		if (it == prepared_.end())
			return;
		if (!it->second.empty() && prepared_generation_ == conn_.generation())
			conn_.query(("DEALLOCATE " + it->second).c_str(), {});
		prepared_.erase(it);
	}

	const SourceInfo *source_info(const std::string &source)
	{
		auto it = sources_.find(source);
		if (it == sources_.end() && !refreshed_this_batch_)
		{
			/* A source registered after we connected: refresh the catalog once per batch. */
			refreshed_this_batch_ = true;
			std::string err;
			if (load_sources(conn_, &sources_, &err))
				resolve_resume_source(sh_, sources_);
			it = sources_.find(source);
		}
		return it == sources_.end() ? nullptr : &it->second;
	}

	void deliver(const std::vector<Entry> &entries)
	{
		refreshed_this_batch_ = false;
		auto now = UnreadCache::Clock::now();
		if (now - last_expire_ >= std::chrono::milliseconds(sh_->cfg.unread_cache_ttl_ms))
		{
			cache_.expire(now);
			last_expire_ = now;
		}
		std::vector<std::string> keys;
		keys.reserve(entries.size());
		for (const auto &e : entries)
			keys.push_back(e.user);
		std::vector<bool> active = sh_->active.filter(keys);

		/*
		 * A TRUNCATE or a (re-)registration anywhere in the batch: forget the
		 * source before anything else, so that every user of it here is
		 * counted afresh (in a snapshot that sees the change).
		 */
		for (const auto &e : entries)
			if (!e.has_user && e.kind == "unread_count")
				source_changed(e.source);

		/* Distinct active users per source whose count must be fetched. */
		std::map<std::string, std::vector<std::string>> need;
		std::map<std::string, std::unordered_set<std::string>>
			seen; /* keeps need[] distinct in O(1) */
		for (size_t i = 0; i < entries.size(); i++)
		{
			const Entry &e = entries[i];
			if (!e.has_user || e.source.empty())
				continue;
			if (e.kind != "notification" && e.kind != "unread_count")
				continue;
			if (!active[i])
			{
				/* Not followed while offline: whatever we hold for them goes stale now. */
				cache_.forget(e.source, e.user);
				continue;
			}
			const SourceInfo *si = source_info(e.source);
			if (!si || !si->has_read_column)
				continue;
			bool fetch =
				e.kind == "unread_count" || !cache_.fresh(e.source, e.user, now) || e.xid == 0;
			if (fetch && seen[e.source].insert(e.user).second)
				need[e.source].push_back(e.user);
		}
		std::map<std::string, std::unordered_map<std::string, int64_t>> counts;
		std::set<std::string> count_failed; /* sources whose counting statement failed */
		for (const auto &kv : need)
			if (!fetch_counts(kv.first, kv.second, now, &counts[kv.first]))
				count_failed.insert(kv.first);

		/*
		 * A transaction's entries are contiguous in the ring.  All its frames
		 * carry the count once it has committed (as a fetched count does), so
		 * the cached counts move on by the whole transaction before its frames
		 * are built.
		 */
		auto fetched = [&](const Entry &e) -> std::optional<int64_t> {
			auto cs = counts.find(e.source);
			if (cs == counts.end())
				return std::nullopt;
			auto c = cs->second.find(e.user);
			if (c == cs->second.end())
				return std::nullopt;
			return c->second;
		};
		std::vector<Event> out;
		size_t run_end = 0;
		for (size_t i = 0; i < entries.size(); i++)
		{
			if (i == run_end)
			{
				run_end = i + 1;
				while (run_end < entries.size() && entries[i].xid != 0 &&
					   entries[run_end].xid == entries[i].xid)
					run_end++;
				for (size_t k = i; k < run_end; k++)
				{
					const Entry &r = entries[k];
					if (active[k] && r.has_user && r.kind == "notification" && !r.source.empty() &&
						!fetched(r))
						cache_.on_notification(r.source, r.user, r.xid, r.unread);
				}
			}
			if (!active[i])
				continue;
			const Entry &e = entries[i];
			if (!e.has_user)
				continue;
			/*
			 * A count fetched for this batch already includes every row of it
			 * (all committed before the count ran); otherwise the cached one,
			 * moved on above.
			 */
			std::optional<int64_t> count = fetched(e);
			if (!count && e.kind == "notification" && !e.source.empty())
			{
				count = cache_.get(e.source, e.user);
				if (count)
					sh_->counters.unread_cache_hits.fetch_add(1, std::memory_order_relaxed);
			}
			Event ev;
			ev.type = Event::Type::Deliver;
			ev.user = e.user;
			if (e.kind == "notification")
			{
				const SourceInfo *si = source_info(e.source);
				std::string_view row =
					e.payload ? std::string_view(*e.payload) : std::string_view("null");
				std::optional<int64_t> id = find_top_level_int(row, si ? si->id_column : "id");
				if (!id)
					id = find_top_level_int(
						row, "id"); /* the oversize stub is {"id":N,"truncated":true} */
				/*
				 * The cursor names what the user's sockets have had once this
				 * frame is in: every row below the base horizon (all delivered
				 * by earlier batches) and the ids listed (cursor.hpp).
				 */
				std::string cursor;
				if (cursors_ && base_x_ && id)
					cursor = book_.stamp(origin_system_, timeline_, *base_x_, e.source, e.user, *id,
										 batch_expiry_);
				/*
				 * No count because counting failed (not because the source has
				 * no read column): the frame says so, and the next frame of
				 * this user is counted afresh (its cache entry was dropped).
				 */
				bool count_error = !count && count_failed.count(e.source) > 0;
				ev.frame = make_notification_frame(e.source, id.value_or(-1), row, count,
												   sh_->headroom, cursor, count_error);
			}
			else if (e.kind == "unread_count")
			{
				if (!count)
					continue; /* no read column or the count query failed: nothing useful to say */
				ev.frame = make_unread_count_frame(e.source, *count, sh_->headroom);
			}
			else
			{
				std::optional<std::string_view> p;
				if (e.payload)
					p = std::string_view(*e.payload);
				ev.frame = make_ephemeral_frame(e.kind, p, sh_->headroom);
			}
			out.push_back(std::move(ev));
		}
		LOG_DEBUG("batch", "entries=%zu frames=%zu after=%lld", entries.size(), out.size(),
				  static_cast<long long>(after_));
		sh_->inbox.post(std::move(out), sh_->ctx);
	}

	Shared *sh_;
	PgConn conn_;
	Backoff backoff_;
	std::unordered_map<std::string, SourceInfo> sources_;
	bool refreshed_this_batch_ = false;
	bool ever_connected_ = false;
	bool fresh_session_ = false; /* no read() on this session yet: the first one does not wait */
	QueryResult last_failure_;	 /* of prime(), for fail_setup() */
	static constexpr const char *kReadStatement = "livenotify_read";
	static constexpr const char *kHorizonStatement = "livenotify_read_horizon";
	/* Resume cursors (cursor.hpp): on when read_horizon() and origin() are usable. */
	bool cursors_ = false;
	std::string origin_system_;
	int64_t timeline_ = 0;
	std::optional<uint64_t> base_x_; /* xmin of the last complete read before this batch */
	uint64_t batch_expiry_ = UINT64_MAX;
	CursorBook book_;
	/* source -> counts_statement(), "" when preparing failed */
	std::unordered_map<std::string, std::string> prepared_;
	uint64_t prepared_generation_ = 0; /* conn_.generation() of prepared_ */
	uint64_t statement_seq_ = 0;
	UnreadCache cache_;
	UnreadCache::Clock::time_point last_expire_{};
	Coalescer coalesce_;
	bool wait_next_ = false; /* the last read() asked for a coalescing wait */
	int64_t epoch_ = 0;
	int64_t after_ = 0;
};

} // namespace

/* Reader thread entry point. */
void
run_reader(Shared *shared)
{
	Reader r(shared);
	r.run();
	shared->counters.db_up.store(0);
	LOG_INFO("thread_stopped", "thread=reader");
}

} // namespace livenotify
