/*
 * memory_trim.hpp: when to give freed memory back to the kernel.
 *
 * glibc's free() keeps most freed memory in its arenas (only the top of the
 * main heap is trimmed, M_TRIM_THRESHOLD; the other threads' arenas, where
 * the reader and the workers build frames, are trimmed even less), so after
 * a burst of queued frames the daemon's RSS stays at its peak: 64 MB stayed
 * after the hostile sockets of issue 12 had gone.  malloc_trim(0) returns the
 * free pages of every arena (malloc/malloc.c, mtrim), at the cost of a walk
 * of the free lists, so the service thread calls it only after a burst: when
 * what the send queues hold together has fallen by after_bytes from its peak
 * since the last trim (steady traffic, where frames are queued and written
 * all the time but the total stays low, never trims), and at most once per
 * interval.
 *
 * Thread: the lws service thread; pure policy, the daemon calls malloc_trim.
 */
#pragma once

#include "send_queue.hpp"

#include <chrono>
#include <cstddef>

namespace livenotify
{

class TrimPolicy
{
public:
	using Clock = std::chrono::steady_clock;

	TrimPolicy(size_t after_bytes, Clock::duration interval)
		: after_bytes_(after_bytes), interval_(interval)
	{
	}

	/* True when a trim is due now; the caller trims, and the peak starts again from here. */
	bool due(Clock::time_point now, QueueTotals *t)
	{
		if (t->peak < t->bytes + after_bytes_)
			return false;
		if (trimmed_once_ && now - last_ < interval_)
			return false;
		trimmed_once_ = true;
		last_ = now;
		t->peak = t->bytes;
		return true;
	}

private:
	size_t after_bytes_;
	Clock::duration interval_;
	bool trimmed_once_ = false;
	Clock::time_point last_{};
};

} // namespace livenotify
