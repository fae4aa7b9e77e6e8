/*
 * rate_limit.hpp: a token bucket, the rate limit of client messages per
 * socket and of resumes per user (docs/protocol.md "Limits").
 *
 * `burst` tokens at most, `rate` tokens added per second; each event takes
 * one.  A full bucket is the same as a new one, so a map of buckets can
 * forget its full ones (RateLimiter below) and stays bounded by the keys
 * that were active within burst / rate seconds.
 *
 * Thread: the owner's (the lws service thread in the daemon); no locking.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string>
#include <unordered_map>

namespace livenotify
{

class TokenBucket
{
public:
	using Clock = std::chrono::steady_clock;

	TokenBucket(double rate, double burst, Clock::time_point now)
		: rate_(rate), burst_(burst), tokens_(burst), last_(now)
	{
	}

	/* Take one token if there is one. */
	bool take(Clock::time_point now)
	{
		refill(now);
		if (tokens_ < 1.0)
			return false;
		tokens_ -= 1.0;
		return true;
	}

	/* Full again (as if it had never been used): the map may forget it. */
	bool full(Clock::time_point now)
	{
		refill(now);
		return tokens_ >= burst_;
	}

	void set(double rate, double burst)
	{
		rate_ = rate;
		burst_ = burst;
		if (tokens_ > burst_)
			tokens_ = burst_;
	}

private:
	void refill(Clock::time_point now)
	{
		if (now <= last_)
			return;
		double dt = std::chrono::duration<double>(now - last_).count();
		last_ = now;
		tokens_ += dt * rate_;
		if (tokens_ > burst_)
			tokens_ = burst_;
	}

	double rate_;
	double burst_;
	double tokens_;
	Clock::time_point last_;
};

/*
 * One bucket per key (a user key).  The map is swept of full buckets when it
 * has grown past twice its size at the last sweep (amortised O(1) a take),
 * so it holds about the keys seen in the last burst / rate seconds.
 */
class RateLimiter
{
public:
	RateLimiter(double rate, double burst) : rate_(rate), burst_(burst)
	{
	}

	bool take(const std::string &key, TokenBucket::Clock::time_point now)
	{
		auto it = buckets_.find(key);
		if (it == buckets_.end())
		{
			if (buckets_.size() >= sweep_at_)
			{
				sweep(now);
				sweep_at_ = std::max<size_t>(kMinSweep, 2 * buckets_.size());
			}
			it = buckets_.emplace(key, TokenBucket(rate_, burst_, now)).first;
		}
		return it->second.take(now);
	}

	void set(double rate, double burst)
	{
		rate_ = rate;
		burst_ = burst;
		for (auto &kv : buckets_)
			kv.second.set(rate, burst);
	}

	size_t size() const
	{
		return buckets_.size();
	}

	void sweep(TokenBucket::Clock::time_point now)
	{
		for (auto it = buckets_.begin(); it != buckets_.end();)
			it = it->second.full(now) ? buckets_.erase(it) : std::next(it);
	}

private:
	static constexpr size_t kMinSweep = 1024;
	double rate_;
	double burst_;
	size_t sweep_at_ = kMinSweep;
	std::unordered_map<std::string, TokenBucket> buckets_;
};

} // namespace livenotify
