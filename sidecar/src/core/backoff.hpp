/*
 * backoff.hpp: reconnect delays, exponential with "equal jitter".
 *
 * The delay doubles from min to max; each attempt waits half of it plus a
 * random part of the other half, so several sidecars that lost the same
 * server do not reconnect in lockstep, and no delay is ever near zero.
 *
 * Thread: the owning thread only (the reader or a worker).
 */
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace livenotify
{

class Backoff
{
public:
	Backoff(int64_t min_ms, int64_t max_ms, uint64_t seed = std::random_device{}())
		: min_(std::max<int64_t>(1, min_ms)), max_(std::max(min_ms, max_ms)), rng_(seed)
	{
	}

	/* Delay before the next attempt, in ms. */
	int64_t next()
	{
		int64_t cap = min_;
		for (int i = 0; i < attempt_ && cap < max_; i++)
			cap *= 2;
		cap = std::min(cap, max_);
		if (attempt_ < 62)
			attempt_++;
		int64_t half = cap / 2;
		std::uniform_int_distribution<int64_t> dist(0, cap - half);
		return half + dist(rng_);
	}

	void reset()
	{
		attempt_ = 0;
	}
	int attempts() const
	{
		return attempt_;
	}

private:
	int64_t min_;
	int64_t max_;
	int attempt_ = 0;
	std::mt19937_64 rng_;
};

} // namespace livenotify
