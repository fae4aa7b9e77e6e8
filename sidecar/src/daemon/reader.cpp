/*
 * reader.cpp: see reader.hpp.
 */
#include "reader.hpp"

#include "backoff.hpp"
#include "db.hpp"
#include "log.hpp"
#include "worker.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <poll.h>
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
	std::string user;
	std::string kind;
	std::optional<std::string> payload;
};

/* Sleep ms or until shutdown; false when shutting down. */
bool
sleep_or_stop(Shared *sh, int64_t ms)
{
	struct pollfd p = {sh->stop_fd, POLLIN, 0};
	int n = poll(&p, 1, static_cast<int>(ms));
	return !(n > 0 || sh->stopping.load());
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
		: sh_(sh), conn_(sh->stop_fd), backoff_(sh->cfg.reconnect_min_ms, sh->cfg.reconnect_max_ms)
	{
	}

	void run()
	{
		while (!sh_->stopping.load())
		{
			if (!conn_.connected() && !connect())
				continue;
			if (!read_once())
				disconnect();
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
			int64_t delay = backoff_.next();
			LOG_WARN("db_connect_failed", "thread=reader error=%s retry_ms=%lld",
					 log_quote(err).c_str(), static_cast<long long>(delay));
			sleep_or_stop(sh_, delay);
			return false;
		}
		if (ever_connected_)
			sh_->counters.db_reconnects.fetch_add(1, std::memory_order_relaxed);

		/*
		 * read() waits on its latch up to read_timeout_ms by design; a
		 * database-wide statement_timeout shorter than that would turn every
		 * quiet period into an error, so this session opts out.
		 */
		QueryResult st = conn_.query("SELECT set_config('statement_timeout', '0', false)", {});
		if (!st.ok())
			return fail_setup("statement_timeout", st.error);

		if (!load_sources(conn_, &sources_, &err))
			return fail_setup("sources", err);
		resolve_resume_source(sh_, sources_);

		QueryResult pos = conn_.query("SELECT epoch, last_seq FROM livenotify.position()", {});
		if (!pos.ok() || pos.rows() != 1)
			return fail_setup("position", pos.error);
		int64_t epoch = pos.integer(0, 0);
		int64_t last = pos.integer(0, 1);

		if (!ever_connected_)
		{
			/* First connection: deliver what commits from now on; older rows come from catch-up. */
			after_ = last;
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
			broadcast_resync(sh_, "epoch");
		}
		else if (after_ > last)
		{
			after_ = last;
			broadcast_resync(sh_, "position");
		}
		/* else: same epoch, continue after our position; read() reports a gap as a 'lost' row. */
		epoch_ = epoch;
		sh_->epoch.store(epoch);
		sh_->counters.last_seq.store(after_);
		sh_->counters.db_up.store(1);
		ever_connected_ = true;
		backoff_.reset();
		LOG_INFO("db_connected", "thread=reader epoch=%lld after=%lld sources=%zu",
				 static_cast<long long>(epoch), static_cast<long long>(after_), sources_.size());
		return true;
	}

	bool fail_setup(const char *what, const std::string &err)
	{
		sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
		int64_t delay = backoff_.next();
		LOG_ERROR("db_setup_failed", "thread=reader step=%s error=%s retry_ms=%lld", what,
				  log_quote(err).c_str(), static_cast<long long>(delay));
		conn_.close();
		sleep_or_stop(sh_, delay);
		return false;
	}

	void disconnect()
	{
		conn_.close();
		sh_->counters.db_up.store(0);
	}

	/* One read() round trip and its batch; false when the connection must be dropped. */
	bool read_once()
	{
		QueryResult r = conn_.query("SELECT epoch, seq, lost, source, user_key, kind, payload FROM "
									"livenotify.read($1, $2, $3)",
									{std::to_string(after_), std::to_string(sh_->cfg.read_batch),
									 std::to_string(sh_->cfg.read_timeout_ms)});
		if (r.status == DbStatus::Interrupted)
			return false;
		if (!r.ok())
		{
			sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			int64_t delay = backoff_.next();
			LOG_ERROR("db_read_failed", "error=%s conn_lost=%d retry_ms=%lld",
					  log_quote(r.error).c_str(), r.status == DbStatus::ConnLost,
					  static_cast<long long>(delay));
			sleep_or_stop(sh_, delay);
			/* Reconnecting re-reads position() and sorts out an epoch change or a bad position. */
			return false;
		}
		backoff_.reset();
		int n = r.rows();
		if (n == 0)
			return true;

		std::vector<Entry> entries;
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
			}
			else if (!r.is_null(i, 4))
			{
				Entry e;
				e.seq = seq;
				e.source = r.is_null(i, 3) ? "" : r.text(i, 3);
				e.user = r.text(i, 4);
				e.kind = std::move(kind);
				if (!r.is_null(i, 6))
					e.payload = r.text(i, 6);
				entries.push_back(std::move(e));
			}
			if (seq > after_)
				after_ = seq;
		}
		sh_->counters.entries_read.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
		sh_->counters.last_seq.store(after_);
		deliver(entries);
		return true;
	}

	/*
	 * The name of this session's prepared counting statement for a source,
	 * prepared on first use from livenotify.unread_counts_query(); empty when
	 * that failed (then unread_counts() is used until the next connection).
	 * unread_counts() is PL/pgSQL that plans its EXECUTE on every call, and
	 * every frame of a batch waits for the count: the prepared statement
	 * skips that planning.  A source registered again with another user or
	 * read column on the same table raises no error in the old statement, so
	 * each is prepared again after kCountsStatementTtl.
	 */
	std::string counts_statement(const std::string &source)
	{
		if (prepared_generation_ != conn_.generation())
		{
			/* A new session: the statements of the previous one are gone with it. */
			prepared_.clear();
			prepared_generation_ = conn_.generation();
		}
		auto now = std::chrono::steady_clock::now();
		auto it = prepared_.find(source);
		if (it != prepared_.end())
		{
			if (now - it->second.at < kCountsStatementTtl)
				return it->second.name;
			if (!it->second.name.empty())
				conn_.query(("DEALLOCATE " + it->second.name).c_str(), {});
			prepared_.erase(it);
		}
		std::string name;
		QueryResult q = conn_.query("SELECT livenotify.unread_counts_query($1)", {source});
		if (q.ok() && q.rows() == 1 && !q.is_null(0, 0))
		{
			/* A fresh name each time: one dropped after an error may still exist. */
			std::string candidate = "livenotify_counts_" + std::to_string(++statement_seq_);
			QueryResult p = conn_.prepare(candidate, q.text(0, 0));
			if (p.ok())
				name = candidate;
			else
				q = std::move(p);
		}
		if (name.empty())
			LOG_WARN("unread_counts_prepare_failed", "source=%s error=%s fallback=unread_counts",
					 log_quote(source).c_str(), log_quote(q.error).c_str());
		if (q.status == DbStatus::Ok || q.status == DbStatus::Error)
			prepared_[source] = {name, now}; /* not cached when the session is lost */
		return name;
	}

	/* Counts for the active users of one source: ONE counting statement. */
	void fetch_counts(const std::string &source, const std::vector<std::string> &users,
					  std::unordered_map<std::string, int64_t> *out)
	{
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
						 log_quote(source).c_str(), log_quote(r.error).c_str());
				prepared_.erase(source);
				conn_.query(("DEALLOCATE " + name).c_str(), {});
				name.clear();
			}
		}
		if (name.empty() && r.status != DbStatus::ConnLost && r.status != DbStatus::Interrupted)
			r = conn_.query("SELECT user_key, unread FROM livenotify.unread_counts($1, "
							"ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
							{source, keys});
		if (!r.ok())
		{
			sh_->counters.db_errors.fetch_add(1, std::memory_order_relaxed);
			LOG_WARN("unread_counts_failed", "source=%s error=%s", log_quote(source).c_str(),
					 log_quote(r.error).c_str());
			return;
		}
		for (int i = 0; i < r.rows(); i++)
			if (!r.is_null(i, 0) && !r.is_null(i, 1))
				(*out)[r.text(i, 0)] = r.integer(i, 1);
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
		std::vector<std::string> keys;
		keys.reserve(entries.size());
		for (const auto &e : entries)
			keys.push_back(e.user);
		std::vector<bool> active = sh_->active.filter(keys);

		/* Distinct active users per source that need a count. */
		std::map<std::string, std::vector<std::string>> need;
		std::map<std::string, std::unordered_set<std::string>>
			seen; /* keeps need[] distinct in O(1) */
		for (size_t i = 0; i < entries.size(); i++)
		{
			const Entry &e = entries[i];
			if (!active[i] || e.source.empty())
				continue;
			if (e.kind != "notification" && e.kind != "unread_count")
				continue;
			const SourceInfo *si = source_info(e.source);
			if (!si || !si->has_read_column)
				continue;
			if (seen[e.source].insert(e.user).second)
				need[e.source].push_back(e.user);
		}
		std::map<std::string, std::unordered_map<std::string, int64_t>> counts;
		for (const auto &kv : need)
			fetch_counts(kv.first, kv.second, &counts[kv.first]);

		std::vector<Event> out;
		for (size_t i = 0; i < entries.size(); i++)
		{
			if (!active[i])
				continue;
			const Entry &e = entries[i];
			std::optional<int64_t> count;
			auto cs = counts.find(e.source);
			if (cs != counts.end())
			{
				auto c = cs->second.find(e.user);
				if (c != cs->second.end())
					count = c->second;
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
				ev.frame =
					make_notification_frame(e.source, id.value_or(-1), row, count, sh_->headroom);
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
	struct Prepared
	{
		std::string name; /* empty: preparing failed, unread_counts() is used */
		std::chrono::steady_clock::time_point at;
	};
	static constexpr std::chrono::seconds kCountsStatementTtl{30};
	std::unordered_map<std::string, Prepared> prepared_; /* source -> counts_statement() */
	uint64_t prepared_generation_ = 0;					 /* conn_.generation() of prepared_ */
	uint64_t statement_seq_ = 0;
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
