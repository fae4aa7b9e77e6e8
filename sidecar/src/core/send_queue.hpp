/*
 * send_queue.hpp: per-socket bounded send queue (the backpressure policy).
 *
 * A socket's frames wait here until lws says the socket is writeable.  The
 * bound is in bytes of what the queued frames really cost (Frame::cost():
 * buffer as allocated with lws's LWS_PRE headroom, the Frame and its control
 * block, malloc's headers, the deque slot), not their payload: a queue of
 * pongs counted by payload held 15 times its bound (issue 12).  A frame
 * shared by several sockets of a user is counted in full by each, so the sum
 * of the bounds is an upper bound of the memory they hold.
 *
 * At most one pong waits per socket: a ping while one is queued is answered
 * by that one (Push::Coalesced), so a client that pings without reading
 * grows nothing here.
 *
 * A frame that would take the queue over
 * the bound is refused and the caller closes the socket with 1008: the client
 * reconnects and resumes from its last id, and one slow client never makes
 * the daemon buffer without limit or slow the others (the model is lws's
 * minimal-ws-server-ring, which culls laggards instead of waiting for them).
 *
 * Thread: the lws service thread only.
 */
#pragma once

#include "frame.hpp"

#include <algorithm>
#include <chrono>
#include <deque>

namespace livenotify
{

/*
 * What all the send queues of a daemon hold together, and the most they held
 * since the last malloc_trim (core/memory_trim.hpp): a drop from the peak is
 * memory freed after a burst.
 */
struct QueueTotals
{
	size_t bytes = 0;
	size_t peak = 0;
};

class SendQueue
{
public:
	explicit SendQueue(size_t limit_bytes, QueueTotals *totals = nullptr)
		: limit_(limit_bytes), totals_(totals)
	{
	}
	~SendQueue()
	{
		account_out(bytes_);
	}
	SendQueue(const SendQueue &) = delete;
	SendQueue &operator=(const SendQueue &) = delete;

	enum class Push
	{
		Queued,
		Overflow,
		Coalesced /* a pong while another waits: nothing queued, the waiting one answers */
	};

	Push push(FramePtr f)
	{
		if (f->kind == FrameKind::Pong && pongs_ > 0)
			return Push::Coalesced;
		size_t n = f->cost();
		if (bytes_ + n > limit_)
			return Push::Overflow;
		bytes_ += n;
		if (totals_)
		{
			totals_->bytes += n;
			totals_->peak = std::max(totals_->peak, totals_->bytes);
		}
		if (f->kind == FrameKind::Pong)
			pongs_++;
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

	/* pop() and clear() return the cost given back. */
	size_t pop()
	{
		const FramePtr &f = q_.front();
		size_t n = f->cost();
		if (f->kind == FrameKind::Pong)
			pongs_--;
		bytes_ -= n;
		account_out(n);
		q_.pop_front();
		return n;
	}

	size_t clear()
	{
		size_t n = bytes_;
		account_out(n);
		/* swap, not clear(): a deque keeps its blocks after clear() */
		std::deque<FramePtr>().swap(q_);
		bytes_ = 0;
		pongs_ = 0;
		return n;
	}

	/* Age of the oldest waiting frame (queue lag), zero when empty. */
	std::chrono::steady_clock::duration oldest_age(std::chrono::steady_clock::time_point now) const
	{
		if (q_.empty())
			return std::chrono::steady_clock::duration::zero();
		return now - q_.front()->created;
	}

private:
	void account_out(size_t n)
	{
		if (totals_)
			totals_->bytes -= n;
	}

	std::deque<FramePtr> q_;
	size_t bytes_ = 0; /* sum of Frame::cost() of the queued frames */
	size_t pongs_ = 0; /* queued pongs: 0 or 1 */
	size_t limit_;
	QueueTotals *totals_;
};

} // namespace livenotify
