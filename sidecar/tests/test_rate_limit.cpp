/*
 * test_rate_limit.cpp: token buckets (client messages, resumes) and the
 * malloc_trim policy.
 */
#include "memory_trim.hpp"
#include "rate_limit.hpp"
#include "send_queue.hpp"

#include <gtest/gtest.h>

using namespace livenotify;
using std::chrono::milliseconds;

namespace
{
const TokenBucket::Clock::time_point t0 = TokenBucket::Clock::now();
}

TEST(RateLimit, BurstThenRate)
{
	TokenBucket b(10, 20, t0);
	for (int i = 0; i < 20; i++)
		EXPECT_TRUE(b.take(t0)) << i;
	EXPECT_FALSE(b.take(t0));
	/* 10 per second: one more every 100 ms. */
	EXPECT_FALSE(b.take(t0 + milliseconds(50)));
	EXPECT_TRUE(b.take(t0 + milliseconds(101)));
	EXPECT_FALSE(b.take(t0 + milliseconds(120)));
	/* Never more than the burst, however long the pause. */
	int n = 0;
	while (b.take(t0 + std::chrono::hours(1)))
		n++;
	EXPECT_EQ(n, 20);
}

TEST(RateLimit, ClockGoingBackAddsNothing)
{
	TokenBucket b(1, 1, t0 + milliseconds(1000));
	EXPECT_TRUE(b.take(t0 + milliseconds(1000)));
	EXPECT_FALSE(b.take(t0));
	EXPECT_FALSE(b.take(t0 + milliseconds(1000)));
}

TEST(RateLimit, PerKeyBucketsAreIndependent)
{
	RateLimiter r(2, 3);
	for (int i = 0; i < 3; i++)
		EXPECT_TRUE(r.take("attacker", t0));
	EXPECT_FALSE(r.take("attacker", t0));
	EXPECT_TRUE(r.take("victim", t0)); /* another user is unaffected */
	EXPECT_TRUE(r.take("attacker", t0 + milliseconds(501)));
}

TEST(RateLimit, FullBucketsAreForgotten)
{
	/* Keys seen once, long ago, do not accumulate: the map stays near the active keys. */
	RateLimiter r(100, 2);
	for (int i = 0; i < 100000; i++)
		r.take("user" + std::to_string(i), t0 + milliseconds(i));
	EXPECT_LT(r.size(), 3000u);
	/* A bucket still refilling is kept (forgetting it would hand out a fresh burst). */
	RateLimiter k(1, 2);
	k.take("busy", t0);
	k.take("busy", t0);
	k.sweep(t0 + milliseconds(10));
	EXPECT_EQ(k.size(), 1u);
	EXPECT_FALSE(k.take("busy", t0 + milliseconds(10)));
	k.sweep(t0 + milliseconds(5000));
	EXPECT_EQ(k.size(), 0u);
}

TEST(RateLimit, SetTakesEffect)
{
	RateLimiter r(1, 1);
	EXPECT_TRUE(r.take("u", t0));
	EXPECT_FALSE(r.take("u", t0));
	r.set(1000, 5);
	EXPECT_TRUE(r.take("u", t0 + milliseconds(2)));
}

TEST(MemoryTrim, AfterABurstAtMostOncePerInterval)
{
	TrimPolicy p(4 << 20, milliseconds(1000));
	QueueTotals tot;
	{
		SendQueue a(64 << 20, &tot);
		FramePtr f = std::make_shared<Frame>();
		f->buf.assign(3 << 20, 'x');
		a.push(f);
		EXPECT_EQ(tot.bytes, f->cost());
		EXPECT_FALSE(p.due(t0, &tot)); /* nothing freed */
		a.pop();
		EXPECT_EQ(tot.bytes, 0u);
		EXPECT_FALSE(p.due(t0, &tot)); /* 3 MB below the peak: not enough */
		FramePtr g = std::make_shared<Frame>();
		g->buf.assign(5 << 20, 'x');
		a.push(g);
		a.push(f);
	} /* a queue destroyed with its frames (the socket closed) gives them back too */
	EXPECT_EQ(tot.bytes, 0u);
	EXPECT_TRUE(p.due(t0, &tot));
	EXPECT_EQ(tot.peak, 0u);
	EXPECT_FALSE(p.due(t0, &tot)); /* the peak starts again from here */
	tot.peak = 100 << 20;
	EXPECT_FALSE(p.due(t0 + milliseconds(500), &tot)); /* too soon after the last */
	EXPECT_TRUE(p.due(t0 + milliseconds(1000), &tot));
}

TEST(MemoryTrim, SteadyTrafficNeverTrims)
{
	/* Frames queued and written all the time, the total low: no trim, however much passes. */
	TrimPolicy p(4 << 20, milliseconds(1000));
	QueueTotals tot;
	SendQueue q(1 << 20, &tot);
	for (int i = 0; i < 100000; i++)
	{
		FramePtr f = std::make_shared<Frame>();
		f->buf.assign(1000, 'x');
		q.push(f);
		q.pop();
		EXPECT_FALSE(p.due(t0 + milliseconds(i * 10), &tot));
	}
}

TEST(MemoryTrim, FreeMemoryLeftInTheArenas)
{
	/* The queues never held much (frames written at once), but the arenas hold 20 MB free. */
	TrimPolicy p(4 << 20, milliseconds(1000));
	QueueTotals tot;
	EXPECT_FALSE(p.due(t0, &tot, 512 << 10));
	EXPECT_TRUE(p.due(t0, &tot, 20 << 20));
	/* 6 MB stayed free (fragments): no trim again for those, only for 1 MB more. */
	p.trimmed(6 << 20);
	EXPECT_FALSE(p.due(t0 + milliseconds(2000), &tot, (6 << 20) + (512 << 10)));
	EXPECT_TRUE(p.due(t0 + milliseconds(3000), &tot, 7 << 20));
	EXPECT_FALSE(p.due(t0 + milliseconds(3500), &tot, 50 << 20)); /* at most once a second */
}
