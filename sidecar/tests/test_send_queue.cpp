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

TEST(Backpressure, QueuesUpToTheBoundInRealCost)
{
	FramePtr a = frame_of(400), b = frame_of(600);
	SendQueue q(a->cost() + b->cost());
	EXPECT_EQ(q.push(a), SendQueue::Push::Queued);
	EXPECT_EQ(q.push(b), SendQueue::Push::Queued); /* exactly at the bound */
	EXPECT_EQ(q.bytes(), a->cost() + b->cost());
	EXPECT_EQ(q.push(frame_of(1)), SendQueue::Push::Overflow);
	EXPECT_EQ(q.frames(), 2u); /* the refused frame was not queued */
}

TEST(Backpressure, CostCountsWhatAFrameHolds)
{
	/*
	 * The payload, the headroom and the buffer's spare capacity, the Frame,
	 * its control block and the queue slot: a small frame costs well over
	 * its payload (a pong: 15 bytes of payload), a large one about its size.
	 */
	FramePtr pong = make_pong_frame(16);
	EXPECT_EQ(pong->payload(), "{\"type\":\"pong\"}");
	EXPECT_GE(pong->cost(), pong->buf.capacity() + sizeof(Frame) + sizeof(FramePtr));
	EXPECT_GE(pong->cost(), 10 * pong->size());
	FramePtr big = frame_of(100000);
	EXPECT_GE(big->cost(), big->buf.capacity() + 16);
	EXPECT_LE(big->cost(), big->buf.capacity() + 1024);
	/* Spare capacity is memory held too. */
	FramePtr roomy = frame_of(100);
	roomy->buf.reserve(5000);
	EXPECT_GE(roomy->cost(), 5000u);
}

TEST(Backpressure, AQueueOfTinyFramesHoldsItsBound)
{
	/* Counted by payload, 1 MB of pongs was ~70k frames and ~15 MB (issue 12). */
	SendQueue q(1 << 20);
	size_t n = 0;
	while (q.push(frame_of(15)) == SendQueue::Push::Queued)
		n++;
	EXPECT_LE(n * (15 + sizeof(Frame) + sizeof(FramePtr)), size_t(1) << 20);
	EXPECT_LE(q.bytes(), size_t(1) << 20);
}

TEST(Backpressure, AtMostOnePongWaits)
{
	SendQueue q(1 << 20);
	FramePtr pong = make_pong_frame(16);
	EXPECT_EQ(q.push(pong), SendQueue::Push::Queued);
	size_t cost = q.bytes();
	for (int i = 0; i < 1000; i++)
		EXPECT_EQ(q.push(make_pong_frame(16)), SendQueue::Push::Coalesced);
	EXPECT_EQ(q.frames(), 1u);
	EXPECT_EQ(q.bytes(), cost);
	/* Other frames still queue behind it; once it is written, the next ping gets one. */
	EXPECT_EQ(q.push(frame_of(10)), SendQueue::Push::Queued);
	EXPECT_EQ(q.push(pong), SendQueue::Push::Coalesced);
	EXPECT_EQ(q.pop(), cost);
	EXPECT_EQ(q.push(pong), SendQueue::Push::Queued);
	EXPECT_EQ(q.frames(), 2u);
	q.clear();
	EXPECT_EQ(q.push(pong), SendQueue::Push::Queued);
}

TEST(Backpressure, PopAndClearReturnTheCostFreed)
{
	SendQueue q(1 << 20);
	FramePtr a = frame_of(100), b = frame_of(200);
	q.push(a);
	q.push(b);
	EXPECT_EQ(q.pop(), a->cost());
	EXPECT_EQ(q.clear(), b->cost());
	EXPECT_EQ(q.bytes(), 0u);
	EXPECT_TRUE(q.empty());
}

TEST(Backpressure, DrainingMakesRoom)
{
	FramePtr f = frame_of(700);
	SendQueue q(f->cost() + 100);
	q.push(f);
	EXPECT_EQ(q.push(frame_of(700)), SendQueue::Push::Overflow);
	q.pop();
	EXPECT_TRUE(q.empty());
	EXPECT_EQ(q.bytes(), 0u);
	EXPECT_EQ(q.push(frame_of(700)), SendQueue::Push::Queued);
}

TEST(Backpressure, FrameLargerThanTheBoundOverflows)
{
	SendQueue q(100);
	EXPECT_EQ(q.push(frame_of(1)), SendQueue::Push::Overflow); /* its overhead alone is more */
}

TEST(Backpressure, QueuesAreIndependent)
{
	/* A slow socket filling up does not affect another socket's queue of the same frames. */
	FramePtr f = frame_of(600);
	SendQueue slow(f->cost() + 500), fast(f->cost() + 500);
	EXPECT_EQ(slow.push(f), SendQueue::Push::Queued);
	EXPECT_EQ(fast.push(f), SendQueue::Push::Queued);
	fast.pop();
	EXPECT_EQ(slow.push(f), SendQueue::Push::Overflow);
	EXPECT_EQ(fast.push(f), SendQueue::Push::Queued);
}

TEST(Backpressure, OldestAge)
{
	SendQueue q(10000);
	auto now = std::chrono::steady_clock::now();
	EXPECT_EQ(q.oldest_age(now).count(), 0);
	FramePtr f = frame_of(10);
	f->created = now - std::chrono::milliseconds(250);
	q.push(f);
	q.push(frame_of(10));
	EXPECT_GE(q.oldest_age(now), std::chrono::milliseconds(250));
}
