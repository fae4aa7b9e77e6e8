/*
 * test_resume.cpp: no duplicate and no gap at the catch-up / live seam.
 */
#include "resume.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

namespace
{
FramePtr
note(int64_t id, const char *source = "api_notification")
{
	return make_notification_frame(source, id, "{\"id\":" + std::to_string(id) + "}", 0, 0);
}

std::vector<int64_t>
ids(const std::vector<FramePtr> &v)
{
	std::vector<int64_t> out;
	for (auto &f : v)
		out.push_back(f->id);
	return out;
}
} // namespace

TEST(Resume, LiveFramesHeldDuringCatchupThenDeduplicated)
{
	ResumeGate g;
	g.begin("api_notification", 10);
	/* Live frames arrive while catch-up runs: 12 and 13 are also in the table. */
	EXPECT_EQ(g.on_live(note(12)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(13)), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(14)), ResumeGate::Live::Held);
	/* Catch-up delivers 11..13. */
	EXPECT_TRUE(g.on_catchup(11));
	EXPECT_TRUE(g.on_catchup(12));
	EXPECT_TRUE(g.on_catchup(13));
	EXPECT_EQ(ids(g.finish()), (std::vector<int64_t>{14}));
	EXPECT_FALSE(g.holding());
	/* After the seam, live frames flow; a late duplicate is still dropped. */
	EXPECT_EQ(g.on_live(note(15)), ResumeGate::Live::Send);
	EXPECT_EQ(g.on_live(note(13)), ResumeGate::Live::Drop);
}

TEST(Resume, IdsTheClientHasAreDropped)
{
	ResumeGate g;
	g.begin("api_notification", 10);
	EXPECT_EQ(g.on_live(note(9)), ResumeGate::Live::Drop);
	EXPECT_FALSE(g.on_catchup(10));
	EXPECT_TRUE(g.on_catchup(11));
	EXPECT_FALSE(g.on_catchup(11)); /* same row twice from catch-up */
}

TEST(Resume, LateCommitWithSmallerIdIsNotLost)
{
	/*
	 * id 20 was assigned before id 21 but committed after the catch-up
	 * snapshot: catch-up returned 21 only.  A high-water mark (drop <= 21)
	 * would lose 20; the exact set keeps it.
	 */
	ResumeGate g;
	g.begin("api_notification", 10);
	EXPECT_TRUE(g.on_catchup(21));
	EXPECT_EQ(g.on_live(note(21)), ResumeGate::Live::Drop);
	EXPECT_EQ(g.on_live(note(20)), ResumeGate::Live::Held);
	EXPECT_EQ(ids(g.finish()), (std::vector<int64_t>{20}));
}

TEST(Resume, OtherFramesPassInOrder)
{
	ResumeGate g;
	g.begin("api_notification", 10);
	auto eph = make_ephemeral_frame("new_message", std::string_view("{}"), 0);
	auto other_source = note(5, "other_table");
	EXPECT_EQ(g.on_live(eph), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(other_source), ResumeGate::Live::Held);
	EXPECT_EQ(g.on_live(note(11)), ResumeGate::Live::Held);
	g.on_catchup(11);
	auto out = g.finish();
	ASSERT_EQ(out.size(), 2u);
	EXPECT_EQ(out[0], eph);
	EXPECT_EQ(out[1], other_source);
}

TEST(Resume, NoResumeMeansNoFiltering)
{
	ResumeGate g;
	EXPECT_EQ(g.on_live(note(1)), ResumeGate::Live::Send);
	EXPECT_FALSE(g.holding());
}

TEST(Resume, HeldBytesAreTracked)
{
	ResumeGate g;
	g.begin("api_notification", 0);
	auto f = note(1);
	g.on_live(f);
	EXPECT_EQ(g.held_bytes(), f->size());
	g.finish();
	EXPECT_EQ(g.held_bytes(), 0u);
}
