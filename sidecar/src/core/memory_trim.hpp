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
 * The queues do not see every burst: a frame written at once never enters
 * one (delivery.cpp, write_now), and a burst whose slow sockets close one by
 * one drains the queues in steps that each stay under after_bytes, while the
 * frames built for it are freed all along (issue 15: 19 MB stayed after such
 * a burst).  So the arenas' own free bytes count too (mallinfo2's fordblks):
 * a trim is also due when they exceed what stayed free after the last trim
 * (fragments a trim cannot return) by a quarter of after_bytes: what a burst
 * leaves behind in the arenas is then under 1 MB.  The free memory of steady
 * traffic is reused all the time and stays below that; were it to swing
 * more, the cost is one trim a second at most.
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

	/*
	 * True when a trim is due now; the caller trims (then calls trimmed()), and
	 * the peak starts again from here.  free_bytes: what the malloc arenas hold
	 * free now (0 when unknown).
	 */
	bool due(Clock::time_point now, QueueTotals *t, size_t free_bytes = 0)
	{
		bool queues_fell = t->peak >= t->bytes + after_bytes_;
		bool arenas_free = free_bytes >= free_floor_ + after_bytes_ / 4;
		if (!queues_fell && !arenas_free)
			return false;
		if (trimmed_once_ && now - last_ < interval_)
			return false;
		trimmed_once_ = true;
		last_ = now;
		t->peak = t->bytes;
		return true;
	}

	/* After the trim: what the arenas still hold free, the floor of the next free_bytes rule. */
	void trimmed(size_t free_after)
	{
		free_floor_ = free_after;
	}

private:
	size_t after_bytes_;
	Clock::duration interval_;
	size_t free_floor_ = 0;
	bool trimmed_once_ = false;
	Clock::time_point last_{};
};

} // namespace livenotify
