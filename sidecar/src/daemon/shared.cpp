/*
 * shared.cpp: the Inbox and the JobQueue (see shared.hpp).
 */
#include "shared.hpp"

#include <libwebsockets.h>

#include <chrono>

namespace livenotify
{

/* Any database thread. */
void
Inbox::post(std::vector<Event> events, lws_context *ctx)
{
	if (events.empty())
		return;
	{
		std::lock_guard<std::mutex> g(mu_);
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

/* Service thread: swap the whole batch out so the lock is held for a pointer swap only. */
std::vector<Event>
Inbox::take()
{
	std::vector<Event> out;
	std::lock_guard<std::mutex> g(mu_);
	out.swap(events_);
	return out;
}

/* Service thread. */
void
JobQueue::push(Job j)
{
	{
		std::lock_guard<std::mutex> g(mu_);
		jobs_.push_back(std::move(j));
	}
	cv_.notify_one();
}

/* Worker threads. */
bool
JobQueue::pop(Job *out, const std::atomic<bool> &stopping)
{
	std::unique_lock<std::mutex> lk(mu_);
	cv_.wait(lk, [&] { return stopping.load() || !jobs_.empty(); });
	if (stopping.load())
		return false;
	*out = std::move(jobs_.front());
	jobs_.pop_front();
	return true;
}

JobQueue::Pop
JobQueue::pop_for(Job *out, const std::atomic<bool> &stopping, int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return pop(out, stopping) ? Pop::Got : Pop::Stopping;
	std::unique_lock<std::mutex> lk(mu_);
	bool ready = cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
							  [&] { return stopping.load() || !jobs_.empty(); });
	if (stopping.load())
		return Pop::Stopping;
	if (!ready)
		return Pop::TimedOut;
	*out = std::move(jobs_.front());
	jobs_.pop_front();
	return Pop::Got;
}

/* Signal thread / main thread at shutdown. */
void
JobQueue::wake_all()
{
	std::lock_guard<std::mutex> g(mu_);
	cv_.notify_all();
}

} // namespace livenotify
