/*
 * memory_trim.hpp: when to give freed memory back to the kernel.
 *
 * glibc's free() keeps most freed memory in its arenas (only the top of the
 * main heap is trimmed, M_TRIM_THRESHOLD; the other threads' arenas, where
 * the reader and the workers build frames, are trimmed even less), so after
 * a burst of queued frames the daemon's RSS stays at its peak: 64 MB stayed
 * after the hostile sockets of issue 12 had gone.  malloc_trim(0) returns the
 * free pages of every arena (malloc/malloc.c, mtrim), at the cost of a walk
 * of the free lists, so the service thread calls it only after a large
 * amount was freed, and at most once per interval.
 *
 * Thread: the lws service thread; pure policy, the daemon calls malloc_trim.
 */
#pragma once

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

	void freed(size_t bytes)
	{
		freed_ += bytes;
	}

	/* True when a trim is due now; the caller trims, and the count starts again. */
	bool due(Clock::time_point now)
	{
		if (freed_ < after_bytes_)
			return false;
		if (trimmed_once_ && now - last_ < interval_)
			return false;
		trimmed_once_ = true;
		last_ = now;
		freed_ = 0;
		return true;
	}

	size_t pending() const
	{
		return freed_;
	}

private:
	size_t after_bytes_;
	Clock::duration interval_;
	size_t freed_ = 0;
	bool trimmed_once_ = false;
	Clock::time_point last_{};
};

} // namespace livenotify
