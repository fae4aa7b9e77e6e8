/*
 * test_send_queue.cpp: the backpressure policy.
 */
#include "send_queue.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

namespace
{
FramePtr
frame_of(size_t n)
{
	auto f = std::make_shared<Frame>();
	f->headroom = 16;
	f->buf.assign(16 + n, 'x');
	return f;
}
} // namespace

TEST(Backpressure, QueuesUpToTheBoundInPayloadBytes)
{
	SendQueue q(1000);
	EXPECT_EQ(q.push(frame_of(400)), SendQueue::Push::Queued);
	EXPECT_EQ(q.push(frame_of(600)), SendQueue::Push::Queued); /* exactly at the bound */
	EXPECT_EQ(q.bytes(), 1000u);							   /* headroom not counted */
	EXPECT_EQ(q.push(frame_of(1)), SendQueue::Push::Overflow);
	EXPECT_EQ(q.frames(), 2u); /* the refused frame was not queued */
}

TEST(Backpressure, DrainingMakesRoom)
{
	SendQueue q(1000);
	q.push(frame_of(700));
	EXPECT_EQ(q.push(frame_of(700)), SendQueue::Push::Overflow);
	q.pop();
	EXPECT_TRUE(q.empty());
	EXPECT_EQ(q.bytes(), 0u);
	EXPECT_EQ(q.push(frame_of(700)), SendQueue::Push::Queued);
}

TEST(Backpressure, FrameLargerThanTheBoundOverflows)
{
	SendQueue q(100);
	EXPECT_EQ(q.push(frame_of(101)), SendQueue::Push::Overflow);
}

TEST(Backpressure, QueuesAreIndependent)
{
	/* A slow socket filling up does not affect another socket's queue of the same frames. */
	SendQueue slow(1000), fast(1000);
	FramePtr f = frame_of(600);
	EXPECT_EQ(slow.push(f), SendQueue::Push::Queued);
	EXPECT_EQ(fast.push(f), SendQueue::Push::Queued);
	fast.pop();
	EXPECT_EQ(slow.push(f), SendQueue::Push::Overflow);
	EXPECT_EQ(fast.push(f), SendQueue::Push::Queued);
}

TEST(Backpressure, OldestAge)
{
	SendQueue q(1000);
	auto now = std::chrono::steady_clock::now();
	EXPECT_EQ(q.oldest_age(now).count(), 0);
	FramePtr f = frame_of(10);
	f->created = now - std::chrono::milliseconds(250);
	q.push(f);
	q.push(frame_of(10));
	EXPECT_GE(q.oldest_age(now), std::chrono::milliseconds(250));
}
