/*
 * test_resume.cpp: no duplicate and no gap at the catch-up / live seam, and
 * the pace of the replay (paged catch-up, send queue kept under half its
 * bound, held live frames on their own budget).
 */
#include "resume.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace livenotify;

namespace
{
const char *const kSource = "api_notification";

FramePtr
note(int64_t id, const char *source = kSource, size_t pad = 0)
{
	return make_notification_frame(
		source, id, "{\"id\":" + std::to_string(id) + ",\"m\":\"" + std::string(pad, 'x') + "\"}",
		0, 0);
}

std::vector<std::pair<int64_t, FramePtr>>
page(std::vector<int64_t> ids, size_t pad = 0)
{
	std::vector<std::pair<int64_t, FramePtr>> out;
	for (int64_t id : ids)
		out.emplace_back(id, note(id, kSource, pad));
	return out;
}

std::vector<int64_t>
ids(const std::vector<FramePtr> &v)
{
	std::vector<int64_t> out;
	for (auto &f : v)
		out.push_back(f->id);
	return out;
}

/* Everything the gate hands out to a socket that drains at once (queue always empty). */
std::vector<FramePtr>
drain(ResumeGate &g)
{
	std::vector<FramePtr> out;
	while (FramePtr f = g.pull(0, 1 << 20))
		out.push_back(f);
	return out;
}

ResumeLimits
limits(size_t page_rows, size_t max_rows, size_t held_bytes = 1 << 20)
{
	ResumeLimits l;
	l.page_rows = page_rows;
	l.max_rows = max_rows;
	l.held_bytes = held_bytes;
	return l;
}
} // namespace

TEST(Resume, LiveFramesHeldDuringCatchupThenDeduplicated)
{
	ResumeGate g;
	g.begin(kSource, 10);
	auto p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->after_id, 10);
	/* Live frames arrive while catch-up runs: 12 and 13 are also in the table. */
	EXPECT_EQ(g.on_live(note(12)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(13)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(14)), ResumeGate::Live::Held);
	/* Catch-up delivers 11..13, and that was all. */
	g.on_page(page({11, 12, 13}), false);
	EXPECT_EQ(ids(drain(g)), (std::vector<int64_t>{11, 12, 13, 14}));
	EXPECT_FALSE(g.holding());
	EXPECT_EQ(g.end(), ResumeGate::End::Complete);
	EXPECT_EQ(g.replayed(), 3u);
	/* After the seam, live frames flow; a late duplicate is still dropped. */
	EXPECT_EQ(g.on_live(note(15)), ResumeGate::Live::Send);
	EXPECT_EQ(g.on_live(note(13)), ResumeGate::Live::Drop);
}

TEST(Resume, IdsTheClientHasAreDropped)
{
	ResumeGate g;
	g.begin(kSource, 10);
	EXPECT_EQ(g.on_live(note(9)), ResumeGate::Live::Drop);
	g.next_page();
	/* 10 is the client's; 11 twice from catch-up is sent once. */
	g.on_page(page({10, 11, 11}), false);
	EXPECT_EQ(ids(drain(g)), (std::vector<int64_t>{11}));
}

TEST(Resume, LateCommitWithSmallerIdIsNotLost)
{
	/*
	 * id 20 was assigned before id 21 but committed after the catch-up
	 * snapshot: catch-up returned 21 only.  A high-water mark (drop <= 21)
	 * would lose 20; the exact set keeps it.
	 */
	ResumeGate g;
	g.begin(kSource, 10);
	g.next_page();
	g.on_page(page({21}), false);
	EXPECT_EQ(g.on_live(note(21)), ResumeGate::Live::Drop);
	EXPECT_EQ(g.on_live(note(20)), ResumeGate::Live::Held);
	EXPECT_EQ(ids(drain(g)), (std::vector<int64_t>{21, 20}));
}

TEST(Resume, OtherFramesPassInOrder)
{
	ResumeGate g;
	g.begin(kSource, 10);
	g.next_page();
	auto eph = make_ephemeral_frame("new_message", std::string_view("{}"), 0);
	auto other_source = note(5, "other_table");
	EXPECT_EQ(g.on_live(eph), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(other_source), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(11)), ResumeGate::Live::Held);
	g.on_page(page({11}), false);
	auto out = drain(g);
	ASSERT_EQ(out.size(), 3u);
	EXPECT_EQ(out[0]->id, 11);
	EXPECT_EQ(out[1], eph);
	EXPECT_EQ(out[2], other_source);
}

TEST(Resume, NoResumeMeansNoFiltering)
{
	ResumeGate g;
	EXPECT_EQ(g.on_live(note(1)), ResumeGate::Live::Send);
	EXPECT_FALSE(g.holding());
	EXPECT_EQ(g.pull(0, 1000), nullptr);
	EXPECT_FALSE(g.next_page().has_value());
}

TEST(Resume, HeldBytesAreTracked)
{
	ResumeGate g;
	g.begin(kSource, 0);
	g.next_page();
	auto f = note(1);
	g.on_live(f);
	EXPECT_EQ(g.held_bytes(), f->cost());
	g.on_page({}, false);
	drain(g);
	EXPECT_EQ(g.held_bytes(), 0u);
}

TEST(Resume, ReplayLargerThanTheSendQueueIsPaced)
{
	/*
	 * The integration case: 40 missed rows of ~4 kB, send_queue_bytes 64 kB.
	 * The socket drains one frame per writeable callback; the queue never
	 * holds more than half its bound, so the replay cannot trip the
	 * slow-client close, and every row arrives in order.
	 */
	const size_t limit = 64 * 1024;
	ResumeGate g;
	g.begin(kSource, 0, limits(100, 1000, limit));
	ASSERT_TRUE(g.next_page().has_value());
	std::vector<int64_t> missed;
	for (int64_t id = 1; id <= 40; id++)
		missed.push_back(id);
	g.on_page(page(missed, 4000), false);

	std::deque<FramePtr> queue;
	size_t queued = 0, peak = 0;
	std::vector<int64_t> sent;
	for (int round = 0; round < 1000 && g.holding(); round++)
	{
		while (FramePtr f = g.pull(queued, limit))
		{
			queued += f->cost();
			queue.push_back(f);
		}
		peak = std::max(peak, queued);
		ASSERT_FALSE(queue.empty());
		queued -= queue.front()->cost(); /* the socket took one frame */
		sent.push_back(queue.front()->id);
		queue.pop_front();
	}
	for (auto &f : queue)
		sent.push_back(f->id);
	EXPECT_FALSE(g.holding());
	EXPECT_EQ(sent, missed);
	EXPECT_LE(peak, limit / 2);
	EXPECT_GT(peak, 0u);
}

TEST(Resume, AFrameAlwaysFitsAnEmptyQueue)
{
	/* A row larger than half the bound still goes, alone. */
	ResumeGate g;
	g.begin(kSource, 0);
	g.next_page();
	g.on_page(page({1, 2}, 3000), false);
	EXPECT_EQ(g.pull(10, 4000), nullptr);
	FramePtr f = g.pull(0, 4000);
	ASSERT_NE(f, nullptr);
	EXPECT_EQ(f->id, 1);
	EXPECT_EQ(g.pull(f->cost(), 4000), nullptr);
}

TEST(Resume, PagesAreFetchedAsTheReplayDrains)
{
	ResumeGate g;
	g.begin(kSource, 100, limits(10, 1000));
	auto p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->after_id, 100);
	EXPECT_EQ(p->max_rows, 10u);
	EXPECT_FALSE(g.next_page().has_value()); /* one page in flight at a time */

	g.on_page(page({101, 102, 103, 104, 105, 106, 107, 108, 109, 110}), true);
	EXPECT_FALSE(g.next_page().has_value()); /* a full page waits to be sent */
	std::vector<int64_t> sent;
	for (int i = 0; i < 5; i++)
		sent.push_back(g.pull(0, 1000)->id);
	/* Half a page left: prefetch the next one, after the last id fetched. */
	p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->after_id, 110);
	/* While it is in flight the rest goes out; then the gate waits, holding. */
	while (FramePtr f = g.pull(0, 1000))
		sent.push_back(f->id);
	EXPECT_TRUE(g.holding());
	EXPECT_EQ(g.on_live(note(200)), ResumeGate::Live::Held);

	g.on_page(page({111, 112}), false);
	EXPECT_FALSE(g.next_page().has_value()); /* the end is known */
	for (auto &f : drain(g))
		sent.push_back(f->id);
	EXPECT_EQ(sent, (std::vector<int64_t>{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
										  112, 200}));
	EXPECT_FALSE(g.holding());
	EXPECT_EQ(g.end(), ResumeGate::End::Complete);
}

TEST(Resume, DuplicatesAreRecognisedAcrossPages)
{
	ResumeGate g;
	g.begin(kSource, 0, limits(2, 1000));
	g.next_page();
	g.on_page(page({1, 2}), true);
	/* The reader delivers 2 (replayed, page 1) and 3 (to come in page 2) while held. */
	EXPECT_EQ(g.on_live(note(2)), ResumeGate::Live::Drop);
	EXPECT_EQ(g.on_live(note(3)), ResumeGate::Live::Held);
	std::vector<int64_t> sent = ids(drain(g));
	auto p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->after_id, 2);
	g.on_page(page({3}), false);
	for (auto &f : drain(g))
		sent.push_back(f->id);
	EXPECT_EQ(sent, (std::vector<int64_t>{1, 2, 3}));
}

TEST(Resume, MaxRowsEndsWithResyncThenHeldFrames)
{
	ResumeGate g;
	g.begin(kSource, 0, limits(5, 8));
	auto p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->max_rows, 5u);
	g.on_page(page({1, 2, 3, 4, 5}), true);
	auto out = drain(g);
	p = g.next_page();
	ASSERT_TRUE(p.has_value());
	EXPECT_EQ(p->max_rows, 3u); /* only what max_rows leaves */
	EXPECT_EQ(g.on_live(note(50)), ResumeGate::Live::Held);
	g.on_page(page({6, 7, 8}), true); /* rows remain: truncated */
	EXPECT_EQ(g.end(), ResumeGate::End::Truncated);
	for (auto &f : drain(g))
		out.push_back(f);
	ASSERT_EQ(out.size(), 10u);
	EXPECT_EQ(out[7]->id, 8);
	EXPECT_EQ(out[8]->kind, FrameKind::Resync);
	EXPECT_EQ(out[8]->payload(), "{\"type\":\"resync\",\"reason\":\"catchup_limit\"}");
	EXPECT_EQ(out[9]->id, 50);
	EXPECT_FALSE(g.holding());
}

TEST(Resume, FailedPageSendsWhatCameThenResync)
{
	ResumeGate g;
	g.begin(kSource, 0, limits(2, 100));
	g.next_page();
	g.on_page(page({1, 2}), true);
	g.on_live(note(9));
	auto out = drain(g);
	ASSERT_TRUE(g.next_page().has_value());
	g.on_page_failed();
	for (auto &f : drain(g))
		out.push_back(f);
	ASSERT_EQ(out.size(), 4u);
	EXPECT_EQ(out[2]->payload(), "{\"type\":\"resync\",\"reason\":\"catchup_failed\"}");
	EXPECT_EQ(out[3]->id, 9);
	EXPECT_EQ(g.end(), ResumeGate::End::Failed);
}

TEST(Resume, HeldFramesHaveTheirOwnBudget)
{
	/*
	 * The replay waiting in the gate does not count against anything; live
	 * frames held behind it do, up to held_bytes: past that the client is
	 * too slow for its user's traffic.
	 */
	auto f = note(100);
	ResumeGate g;
	g.begin(kSource, 0, limits(100, 1000, 2 * f->cost() + 1));
	g.next_page();
	g.on_page(page({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 4000), false);
	EXPECT_EQ(g.on_live(note(100)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(101)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(102)), ResumeGate::Live::Overflow);
	EXPECT_EQ(g.held_bytes(), 2 * f->cost());
}

TEST(Resume, HeldFramesAreReleasedAtThePaceOfTheQueueAndInOrder)
{
	ResumeGate g;
	g.begin(kSource, 0);
	g.next_page();
	g.on_live(note(10, kSource, 100));
	g.on_live(note(11, kSource, 100));
	g.on_page({}, false);
	size_t limit = 2 * note(10, kSource, 100)->cost();
	FramePtr first = g.pull(0, limit);
	ASSERT_NE(first, nullptr);
	EXPECT_EQ(first->id, 10);
	/* The queue holds half its bound: 11 waits, and a new live frame goes behind it. */
	EXPECT_EQ(g.pull(first->cost(), limit), nullptr);
	EXPECT_TRUE(g.holding());
	EXPECT_EQ(g.on_live(note(12)), ResumeGate::Live::Held);
	EXPECT_EQ(ids(drain(g)), (std::vector<int64_t>{11, 12}));
	EXPECT_FALSE(g.holding());
	EXPECT_EQ(g.on_live(note(13)), ResumeGate::Live::Send);
}
