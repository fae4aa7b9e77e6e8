/*
 * coalesce.hpp: when the reader waits before its next livenotify.read().
 *
 * Every read() that returns entries costs a round trip to the reader's
 * backend (and read_horizon()'s), a hand-off to the service thread and an
 * lws wake-up, whatever the number of entries it brings.  Under a stream of
 * single-row commits each read() brought one: at 5,000 commits/s that was
 * 5,000 of each per second, most of livenotify's own CPU (issue 15).  So
 * under a stream the reader waits `window` after a batch, and the next
 * read() takes everything committed meanwhile in one go; a commit on an idle
 * system is still read the moment it lands (read() blocks on its latch).
 *
 * "A stream" is decided from what the reads see, not from a clock of its own:
 * a batch of two or more entries (they arrived faster than we read), or a
 * batch that follows the previous non-empty one within `window` (one commit
 * per read, but back to back).  A full batch (read_batch entries: a backlog)
 * is followed at once: waiting would only delay rows that are already there.
 * The latency this adds is at most `window` per row, and only under load;
 * at 500 commits/s (one per 2 ms) with the default 1 ms nothing waits.
 */
#pragma once

#include <chrono>
#include <cstdint>

namespace livenotify
{

class Coalescer
{
public:
	using Clock = std::chrono::steady_clock;

	explicit Coalescer(std::chrono::microseconds window) : window_(window)
	{
	}

	/*
	 * A read() returned `entries` (of at most `batch_max`) at `now`: true if
	 * the reader should wait window() before the next one.
	 */
	bool after_read(int entries, int batch_max, Clock::time_point now)
	{
		if (entries <= 0)
			return false;
		bool stream = entries >= 2 || (have_last_ && now - last_rows_ < window_);
		have_last_ = true;
		last_rows_ = now;
		return window_.count() > 0 && stream && entries < batch_max;
	}

	std::chrono::microseconds window() const
	{
		return window_;
	}

private:
	std::chrono::microseconds window_;
	bool have_last_ = false;
	Clock::time_point last_rows_{};
};

} // namespace livenotify
