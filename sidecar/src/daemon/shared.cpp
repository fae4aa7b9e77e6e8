/*
 * shared.cpp: the Inbox and the JobQueue (see shared.hpp).
 */
#include "shared.hpp"

#include <libwebsockets.h>

#include <chrono>
#include <algorithm>

namespace livenotify
{

/* Any database thread. */
void
Inbox::post(std::vector<Event> events, lws_context *ctx)
{
	if (events.empty())
		return;
	size_t bytes = 0;
	for (const auto &e : events)
		bytes += cost(e);
	{
		std::lock_guard<std::mutex> g(mu_);
		bytes_.fetch_add(bytes, std::memory_order_relaxed);
		if (events_.empty())
			events_ = std::move(events);
		else
			for (auto &e : events)
				events_.push_back(std::move(e));
	}
	/* The one lws call that is safe from another thread: wakes lws_service(). */
	if (ctx)
		lws_cancel_service(ctx);
}

/* Any database thread. */
void
Inbox::post(Event e, lws_context *ctx)
{
	std::vector<Event> v;
	v.push_back(std::move(e));
	post(std::move(v), ctx);
}

size_t
Inbox::cost(const Event &e)
{
	size_t n = e.frame ? e.frame->cost() : 0;
	for (const auto &r : e.rows)
		n += r.second ? r.second->cost() : 0;
	return n;
}

/* Service thread. */
void
Inbox::done(size_t bytes)
{
	if (bytes == 0)
		return;
	/*
	 * seq_cst here and in wait_below(): the waiter announces itself, then
	 * reads bytes_; this subtracts, then reads waiting_.  With weaker orders
	 * both could read the old value, and the reader would sleep its whole
	 * step although there is room.
	 */
	bytes_.fetch_sub(bytes, std::memory_order_seq_cst);
	if (waiting_.load(std::memory_order_seq_cst) > 0)
	{
		/* Under the mutex, so a waiter between its check and its sleep cannot miss it. */
		std::lock_guard<std::mutex> g(mu_);
		room_.notify_all();
	}
}

/* Reader thread. */
bool
Inbox::wait_below(size_t limit, std::chrono::milliseconds max_wait)
{
	if (bytes() < limit)
		return true;
	std::unique_lock<std::mutex> lk(mu_);
	waiting_.fetch_add(1, std::memory_order_seq_cst);
	bool ok = room_.wait_for(lk, max_wait,
							 [&] { return bytes_.load(std::memory_order_seq_cst) < limit; });
	waiting_.fetch_sub(1, std::memory_order_seq_cst);
	return ok;
}

/* Service thread: swap the whole batch out so the lock is held for a pointer swap only. */
std::vector<Event>
Inbox::take()
{
	std::vector<Event> out;
	std::lock_guard<std::mutex> g(mu_);
	out.swap(events_);
	return out;
}

/* Main thread, before the workers start. */
void
JobQueue::configure(size_t max_catchup, int workers, Counters *counters)
{
	std::lock_guard<std::mutex> g(mu_);
	max_catchup_ = max_catchup;
	/* One worker kept for authentication when there are two or more. */
	catchup_running_max_ = workers > 1 ? static_cast<size_t>(workers - 1) : 1;
	counters_ = counters;
}

/* Under mu_. */
void
JobQueue::purge_dead()
{
	size_t before = catchup_.size();
	catchup_.erase(
		std::remove_if(catchup_.begin(), catchup_.end(), [](const Job &j) { return j.dead(); }),
		catchup_.end());
	if (counters_ && before != catchup_.size())
		counters_->catchup_jobs_dropped.fetch_add(before - catchup_.size(),
												  std::memory_order_relaxed);
}

/* Service thread. */
bool
JobQueue::push(Job j)
{
	{
		std::lock_guard<std::mutex> g(mu_);
		if (j.type == Job::Type::AuthSql)
			auth_.push_back(std::move(j));
		else
		{
			if (catchup_.size() >= max_catchup_)
				purge_dead();
			if (catchup_.size() >= max_catchup_)
			{
				if (counters_)
					counters_->catchup_jobs_refused.fetch_add(1, std::memory_order_relaxed);
				return false;
			}
			catchup_.push_back(std::move(j));
			if (counters_)
				counters_->catchup_jobs_queued.fetch_add(1, std::memory_order_relaxed);
		}
	}
	/* notify_all: the one woken by notify_one may be a worker that may not take a catch-up job. */
	cv_.notify_all();
	return true;
}

/* Worker threads. */
bool
JobQueue::pop(Job *out, const std::atomic<bool> &stopping)
{
	return pop_for(out, stopping, -1) == Pop::Got;
}

/* Lock held.  Auth jobs first; a catch-up job only while a worker is left for auth. */
bool
JobQueue::take_locked(Job *out)
{
	while (!auth_.empty() && auth_.front().dead())
		auth_.pop_front(); /* its AuthResult would be dropped anyway */
	if (!auth_.empty())
	{
		*out = std::move(auth_.front());
		auth_.pop_front();
		return true;
	}
	while (!catchup_.empty() && catchup_.front().dead())
	{
		catchup_.pop_front();
		if (counters_)
			counters_->catchup_jobs_dropped.fetch_add(1, std::memory_order_relaxed);
	}
	if (!catchup_.empty() && catchup_running_ < catchup_running_max_)
	{
		*out = std::move(catchup_.front());
		catchup_.pop_front();
		catchup_running_++;
		return true;
	}
	return false;
}

/* Worker threads. */
void
JobQueue::catchup_done()
{
	{
		std::lock_guard<std::mutex> g(mu_);
		catchup_running_--;
	}
	cv_.notify_all();
}

JobQueue::Pop
JobQueue::pop_for(Job *out, const std::atomic<bool> &stopping, int64_t timeout_ms)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	std::unique_lock<std::mutex> lk(mu_);

	for (;;)
	{
		if (stopping.load())
			return Pop::Stopping;
		if (take_locked(out))
			return Pop::Got;
		if (timeout_ms < 0)
			cv_.wait(lk);
		else if (cv_.wait_until(lk, deadline) == std::cv_status::timeout)
		{
			if (stopping.load())
				return Pop::Stopping;
			return take_locked(out) ? Pop::Got : Pop::TimedOut;
		}
	}
}

/* Signal thread / main thread at shutdown. */
void
JobQueue::wake_all()
{
	std::lock_guard<std::mutex> g(mu_);
	cv_.notify_all();
}

} // namespace livenotify
