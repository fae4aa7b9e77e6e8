/*
 * test_backoff.cpp: reconnect delays grow, stay bounded and are jittered.
 */
#include "backoff.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace livenotify;

TEST(Backoff, GrowsToTheCapWithJitter)
{
	Backoff b(100, 10000, 1);
	int64_t cap = 100;
	for (int i = 0; i < 20; i++)
	{
		int64_t d = b.next();
		EXPECT_GE(d, cap / 2) << i;
		EXPECT_LE(d, cap) << i;
		cap = std::min<int64_t>(cap * 2, 10000);
	}
}

TEST(Backoff, ResetStartsOver)
{
	Backoff b(100, 10000, 2);
	for (int i = 0; i < 10; i++)
		b.next();
	b.reset();
	EXPECT_LE(b.next(), 100);
}

TEST(Backoff, SidecarsDoNotReconnectInLockstep)
{
	std::set<int64_t> delays;
	for (uint64_t seed = 0; seed < 20; seed++)
	{
		Backoff b(1000, 60000, seed);
		for (int i = 0; i < 5; i++)
			b.next();
		delays.insert(b.next());
	}
	EXPECT_GT(delays.size(), 10u);
}
