/*
 * shared.hpp: what the threads of livenotifyd share, and how they talk.
 *
 * Threads:
 *   service thread  the lws event loop (server.cpp); the only one that touches a wsi
 *   reader thread   the queue session: livenotify.read() in a loop (reader.cpp)
 *   worker threads  SQL auth and catch-up for new sockets (worker.cpp)
 *   signal thread   sigwait(); turns signals into flags (main.cpp)
 *
 * Database threads never call into lws except lws_cancel_service(), the one
 * thread-safe lws call (lws READMEs/README.coding.md): they append events to
 * the Inbox under its mutex and wake the service thread, which drains it in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED (the minimal-ws-server-threads pattern).
 */
#pragma once

#include "config.hpp"
#include "cursor.hpp"
#include "db_health.hpp"
#include "fd_budget.hpp"
#include "frame.hpp"
#include "groups.hpp"
#include "metrics.hpp"
#include "user_key.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct lws_context;

namespace livenotify
{

struct Event
{
	enum class Type
	{
		Deliver,	   /* frame to every socket of user */
		Broadcast,	   /* frame to every authenticated socket (resync) */
		AuthResult,	   /* SQL auth finished for session */
		CatchupResult, /* catch-up rows for session */
		ReaderReady,   /* the reader's first position is taken and the resume source resolved */
	};
	Type type = Type::Deliver;
	std::string user;
	FramePtr frame;
	uint64_t session = 0;
	/* AuthResult */
	bool ok = false;
	bool unavailable = false; /* database down: retry later, not the client's fault */
	std::string reason;
	/* CatchupResult: one page, (id, frame) in id order; more: rows remain after it */
	std::vector<std::pair<int64_t, FramePtr>> rows;
	bool more = false;
	bool failed = false;
	std::optional<int64_t> unread; /* the count spliced into the page (reused for the next) */
	bool count_error = false;	   /* the count query failed: frames say unread_count_error */
};

/*
 * Frames handed to the service thread and not sent or queued yet, beyond
 * which the reader waits before its next read() (Inbox::wait_below): the
 * rows then wait in the ring, which is there for that (and says `lost` when
 * it overflows), instead of in the daemon's memory.  A burst the service
 * thread could not hand out as fast as the reader read it held 30 MB here
 * (issue 15).  The inbox holds at most this plus one read() batch.
 */
constexpr size_t kInboxMaxBytes = 2 << 20;

class Inbox
{
public:
	/* Any database thread: append and wake the service thread. */
	void post(std::vector<Event> events, lws_context *ctx);
	void post(Event e, lws_context *ctx);
	/* Service thread. */
	std::vector<Event> take();
	/* Service thread: events whose frames cost `bytes` (Frame::cost()) were handled. */
	void done(size_t bytes);
	/* Reader: wait up to max_wait until the frames not handled yet cost less than limit. */
	bool wait_below(size_t limit, std::chrono::milliseconds max_wait);
	size_t bytes() const
	{
		return bytes_.load(std::memory_order_relaxed);
	}

	/* What an event's frames cost (its live frame and a catch-up page's rows). */
	static size_t cost(const Event &e);

private:
	std::mutex mu_;
	std::condition_variable room_;
	std::vector<Event> events_;
	std::atomic<size_t> bytes_{0};
	std::atomic<int> waiting_{0};
};

/* Work for the worker pool. */
struct Job
{
	enum class Type
	{
		AuthSql,
		Catchup
	};
	Type type = Type::AuthSql;
	uint64_t session = 0;
	/*
	 * The session's liveness token (Session::live): the service thread
	 * clears it when the socket closes, and a worker drops the job unqueried
	 * then (a flood of resumes that hang up at once queried 3.5 M rows for
	 * dead sockets, issue 12).  Null: always run.
	 */
	std::shared_ptr<const std::atomic<bool>> live;
	std::string token;	/* AuthSql */
	std::string source; /* Catchup: one page of livenotify.catchup() */
	std::string user;	/* Catchup */
	int64_t after_id = 0;
	size_t max_rows = 0;
	/* Catchup by cursor: livenotify.catchup_cursor() with its horizon and the ids had. */
	std::optional<Cursor> cursor;
	bool count_known = false;	   /* later pages reuse the first page's unread count */
	std::optional<int64_t> unread; /* that count (nullopt: the source has no read column) */

	bool dead() const
	{
		return live && !live->load(std::memory_order_acquire);
	}
};

/*
 * The workers' two queues.  Authentication first: a worker takes a catch-up
 * job only when no auth job waits, and while db_workers > 1 at most
 * db_workers - 1 catch-up queries run at once, so an SQL authentication
 * never waits behind a resume flood (issue 12); it waits for no queued
 * catch-up job and, with 2 workers or more, for no running one either.
 * Auth jobs are bounded by max_pending_auth (one per pending socket, in
 * AuthPending); catch-up jobs by catchup_queue_max (push refuses beyond it,
 * after dropping the jobs of closed sockets), one per resuming socket.
 */
class JobQueue
{
public:
	/* Before the workers start. */
	void configure(size_t max_catchup, int workers, Counters *counters);
	/* Service thread.  false: the catch-up queue is full, the job was not queued. */
	bool push(Job j);
	/* Worker threads.  Blocks; false when stopping.  Jobs of closed sockets are skipped. */
	bool pop(Job *out, const std::atomic<bool> &stopping);
	enum class Pop
	{
		Got,
		TimedOut,
		Stopping
	};
	/* Waits at most timeout_ms (< 0: no limit). */
	Pop pop_for(Job *out, const std::atomic<bool> &stopping, int64_t timeout_ms);
	/* Worker threads: the catch-up job popped last has finished. */
	void catchup_done();
	void wake_all();

private:
	/* Under mu_: drop the catch-up jobs of closed sockets. */
	void purge_dead();
	/* Under mu_: the next job a worker may run, if any. */
	bool take_locked(Job *out);

	std::mutex mu_;
	std::condition_variable cv_;

	std::deque<Job> auth_;
	std::deque<Job> catchup_;
	size_t max_catchup_ = 1024;
	size_t catchup_running_ = 0;
	size_t catchup_running_max_ = 1;
	Counters *counters_ = nullptr;
};

struct Shared
{
	Config cfg; /* startup configuration; database threads read only what SIGHUP cannot change */
	/* RLIMIT_NOFILE (soft, raised to hard) at startup and what it allows (core/fd_budget.hpp). */
	uint64_t nofile = 0;
	FdPlan fd_plan;
	Counters counters;
	DbHealth health; /* reader's last read, failing workers (/healthz) */
	ActiveUsers active;
	Inbox inbox;
	JobQueue jobs;
	std::atomic<int64_t> epoch{0};
	/*
	 * Set by the reader once its first livenotify.position() is taken (then it
	 * posts ReaderReady).  A socket that joined before has no live stream for
	 * the rows committed meanwhile: its catch-up waits for ReaderReady, or it
	 * gets resync `epoch` then.
	 */
	std::atomic<bool> reader_positioned{false};
	std::atomic<bool> stopping{false};
	int stop_fd = -1;						 /* eventfd, readable once shutdown starts */
	std::atomic<lws_context *> ctx{nullptr}; /* written by the main thread, read by every thread */
	size_t headroom = 0;					 /* LWS_PRE, passed to the lws-free frame builders */

	/*
	 * The source used for resume: cfg.source (set at startup, before any socket
	 * is accepted), or the only registered source (set by the reader).
	 */
	std::string resume_source()
	{
		std::lock_guard<std::mutex> g(source_mu_);
		return resume_source_;
	}
	void set_resume_source(const std::string &s)
	{
		std::lock_guard<std::mutex> g(source_mu_);
		resume_source_ = s;
	}

	/*
	 * "system.timeline" of the database (livenotify.origin()), set by the
	 * reader at each connection before ReaderReady; empty until then.  A
	 * resume cursor is trusted only when its origin is this one.
	 */
	std::string origin()
	{
		std::lock_guard<std::mutex> g(source_mu_);
		return origin_;
	}
	void set_origin(const std::string &o)
	{
		std::lock_guard<std::mutex> g(source_mu_);
		origin_ = o;
	}

	/*
	 * The user column types of the registered sources, as the reader last
	 * loaded them (empty until then): a user key that is another spelling of
	 * a value of one of them is refused at authentication (core/user_key.hpp).
	 * Any thread; a copy under the lock, a few entries.
	 */
	void set_user_key_types(std::vector<UserKeyType> types)
	{
		std::lock_guard<std::mutex> g(source_mu_);
		user_key_types_ = std::move(types);
	}
	bool user_key_acceptable(const std::string &key, std::string *why)
	{
		std::lock_guard<std::mutex> g(source_mu_);
		return livenotify::user_key_acceptable(key, user_key_types_, why);
	}

private:
	std::mutex source_mu_;
	std::string resume_source_;
	std::string origin_;
	std::vector<UserKeyType> user_key_types_;
};

/* Per-thread cache of livenotify.sources (id and read columns). */
struct SourceInfo
{
	std::string id_column = "id";
	bool has_read_column = false;
	UserKeyType user_key_type;
};

} // namespace livenotify
