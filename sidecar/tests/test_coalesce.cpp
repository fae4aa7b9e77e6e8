/*
 * test_coalesce.cpp: the reader waits for more entries only under a stream of
 * commits, never for a lone commit, an empty read or a full batch.
 */
#include "coalesce.hpp"

#include <gtest/gtest.h>

using namespace livenotify;
using std::chrono::microseconds;

namespace
{
const Coalescer::Clock::time_point t0{};
}

TEST(Coalescer, LoneCommitsAreReadAtOnce)
{
	Coalescer c(microseconds(1000));
	/* One commit every 2 ms (500/s): never a stream. */
	for (int i = 0; i < 10; i++)
		EXPECT_FALSE(c.after_read(1, 1000, t0 + microseconds(2000 * i))) << i;
}

TEST(Coalescer, EmptyReadsNeverWait)
{
	Coalescer c(microseconds(1000));
	EXPECT_FALSE(c.after_read(0, 1000, t0));
	EXPECT_FALSE(c.after_read(0, 1000, t0 + microseconds(10)));
}

TEST(Coalescer, SeveralEntriesMeanAStream)
{
	Coalescer c(microseconds(1000));
	EXPECT_TRUE(c.after_read(2, 1000, t0));
	/* After the wait the next batch holds what came meanwhile: still a stream. */
	EXPECT_TRUE(c.after_read(5, 1000, t0 + microseconds(1100)));
}

TEST(Coalescer, BackToBackSingleEntriesMeanAStream)
{
	Coalescer c(microseconds(1000));
	EXPECT_FALSE(c.after_read(1, 1000, t0)); /* the first commit after idle: at once */
	EXPECT_TRUE(c.after_read(1, 1000, t0 + microseconds(200)));
	/* The stream stopped: one commit long after the last is read at once again. */
	EXPECT_FALSE(c.after_read(1, 1000, t0 + microseconds(50000)));
}

TEST(Coalescer, AFullBatchIsFollowedAtOnce)
{
	Coalescer c(microseconds(1000));
	EXPECT_FALSE(c.after_read(1000, 1000, t0));
	EXPECT_FALSE(c.after_read(1000, 1000, t0 + microseconds(10)));
	EXPECT_TRUE(c.after_read(999, 1000, t0 + microseconds(20)));
}

TEST(Coalescer, ZeroWindowNeverWaits)
{
	Coalescer c(microseconds(0));
	EXPECT_FALSE(c.after_read(50, 1000, t0));
	EXPECT_FALSE(c.after_read(50, 1000, t0 + microseconds(1)));
}
