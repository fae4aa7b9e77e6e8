/*
 * send_queue.hpp: per-socket bounded send queue (the backpressure policy).
 *
 * A socket's frames wait here until lws says the socket is writeable.  The
 * bound is in bytes of frame payload.  A frame that would take the queue over
 * the bound is refused and the caller closes the socket with 1008: the client
 * reconnects and resumes from its last id, and one slow client never makes
 * the daemon buffer without limit or slow the others (the model is lws's
 * minimal-ws-server-ring, which culls laggards instead of waiting for them).
 *
 * Thread: the lws service thread only.
 */
#pragma once

#include "frame.hpp"

#include <chrono>
#include <deque>

namespace livenotify
{

class SendQueue
{
public:
	explicit SendQueue(size_t limit_bytes) : limit_(limit_bytes)
	{
	}

	enum class Push
	{
		Queued,
		Overflow
	};

	Push push(FramePtr f)
	{
		size_t n = f->size();
		if (bytes_ + n > limit_)
			return Push::Overflow;
		bytes_ += n;
		q_.push_back(std::move(f));
		return Push::Queued;
	}

	bool empty() const
	{
		return q_.empty();
	}
	size_t bytes() const
	{
		return bytes_;
	}
	size_t frames() const
	{
		return q_.size();
	}
	size_t limit() const
	{
		return limit_;
	}
	void set_limit(size_t limit)
	{
		limit_ = limit;
	}

	const FramePtr &front() const
	{
		return q_.front();
	}

	void pop()
	{
		bytes_ -= q_.front()->size();
		q_.pop_front();
	}

	void clear()
	{
		q_.clear();
		bytes_ = 0;
	}

	/* Age of the oldest waiting frame (queue lag), zero when empty. */
	std::chrono::steady_clock::duration oldest_age(std::chrono::steady_clock::time_point now) const
	{
		if (q_.empty())
			return std::chrono::steady_clock::duration::zero();
		return now - q_.front()->created;
	}

private:
	std::deque<FramePtr> q_;
	size_t bytes_ = 0;
	size_t limit_;
};

} // namespace livenotify
