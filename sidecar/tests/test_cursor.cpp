/*
 * test_cursor.cpp: resume cursors, their parse bounds and the per-user book.
 */
#include "client_message.hpp"
#include "cursor.hpp"
#include "frame.hpp"
#include "resume.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace livenotify;

TEST(Cursor, EncodeParseRoundTrip)
{
	Cursor c;
	c.system = "7324587204812307634";
	c.timeline = 3;
	c.horizon = 4294967301ULL;
	c.had = {11, 12};
	std::string s = c.encode();
	EXPECT_EQ(s, "v1.7324587204812307634.3.4294967301.11.12");
	auto p = Cursor::parse(s);
	ASSERT_TRUE(p);
	EXPECT_EQ(p->system, c.system);
	EXPECT_EQ(p->timeline, 3);
	EXPECT_EQ(p->horizon, c.horizon);
	EXPECT_EQ(p->had, c.had);
	EXPECT_EQ(p->origin(), "7324587204812307634.3");

	auto bare = Cursor::parse("v1.18446744073709551615.1.900");
	ASSERT_TRUE(bare);
	EXPECT_EQ(bare->system, "18446744073709551615"); /* the whole unsigned range */
	EXPECT_TRUE(bare->had.empty());
}

TEST(Cursor, MalformedIsRefusedWithAReason)
{
	std::string why;
	for (const char *bad :
		 {"", "v1", "v1.1.1", "v2.1.1.1", "v1.1.0.5", "v1.-1.1.5", "v1.1.1.5.", "v1.1.1.5.x",
		  "v1.1.1.9223372036854775808", "v1.18446744073709551616.1.1", "v1.1.4294967296.1",
		  "v1.1.1.1.1234567890123456789", "v1..1.1", " v1.1.1.1", "v1.1.1.1\n"})
	{
		why.clear();
		EXPECT_FALSE(Cursor::parse(bad, &why)) << bad;
		EXPECT_FALSE(why.empty()) << bad;
	}
	/* Bounded: more ids than a catch-up accepts, or too long, is refused without work. */
	std::string many = "v1.1.1.1";
	for (size_t i = 0; i <= kCursorMaxIdsParsed; i++)
		many += ".7";
	EXPECT_FALSE(Cursor::parse(many, &why));
	EXPECT_FALSE(Cursor::parse(std::string(kCursorMaxLength + 1, '1'), &why));
	std::string most = "v1.1.1.1";
	for (size_t i = 0; i < kCursorMaxIdsParsed; i++)
		most += ".123456789012345678";
	EXPECT_TRUE(Cursor::parse(most));
}

TEST(Cursor, AddHadKeepsTheNewestBounded)
{
	Cursor c;
	c.system = "1";
	c.timeline = 1;
	for (int64_t i = 1; i <= 20; i++)
		c.add_had(i);
	c.add_had(20);
	ASSERT_EQ(c.had.size(), kCursorMaxIds);
	EXPECT_EQ(c.had.front(), 5);
	EXPECT_EQ(c.had.back(), 20);
}

/*
 * The book lists an id until the base horizon passes the xmax of the batch
 * that delivered it: the out-of-order case keeps "fast" listed while "slow"
 * (an older transaction) is still below no horizon.
 */
TEST(CursorBook, ListsIdsUntilTheHorizonPassesThem)
{
	CursorBook book;
	/* Batch 1 (horizon xmin 100 from before, own xmax 105): row 11 of user 1. */
	EXPECT_EQ(book.stamp("9", 1, 100, "n", "1", 11, 105), "v1.9.1.100.11");
	/* Batch 2, base still 100 (the slow transaction 100 is open): row 12. */
	EXPECT_EQ(book.stamp("9", 1, 100, "n", "1", 12, 107), "v1.9.1.100.11.12");
	/* Another user has its own list. */
	EXPECT_EQ(book.stamp("9", 1, 100, "n", "2", 13, 107), "v1.9.1.100.13");
	/* Transaction 100 ended: base 106 passes row 11's batch, not row 12's. */
	EXPECT_EQ(book.stamp("9", 1, 106, "n", "1", 10, 110), "v1.9.1.106.12.10");
	/* Unknown expiry stays listed (capped). */
	for (int64_t i = 0; i < 40; i++)
		book.stamp("9", 1, 200, "n", "3", 1000 + i, UINT64_MAX);
	auto c = Cursor::parse(book.stamp("9", 1, 200, "n", "3", 2000, UINT64_MAX));
	ASSERT_TRUE(c);
	EXPECT_EQ(c->had.size(), kCursorMaxIds);
	EXPECT_EQ(c->had.back(), 2000);
}

TEST(CursorBook, BoundedInKeys)
{
	CursorBook book(2);
	book.stamp("9", 1, 1, "n", "a", 1, 5);
	book.stamp("9", 1, 1, "n", "b", 2, 5);
	EXPECT_EQ(book.keys(), 2u);
	book.stamp("9", 1, 1, "n", "c", 3, 5);
	EXPECT_LE(book.keys(), 2u);
}

TEST(Cursor, NotificationFrameCarriesIt)
{
	FramePtr f = make_notification_frame("n", 11, R"({"id":11})", 2, 0, "v1.9.1.100.11");
	auto j = nlohmann::json::parse(f->payload());
	EXPECT_EQ(j["cursor"], "v1.9.1.100.11");
	EXPECT_EQ(j["id"], 11);
	FramePtr g = make_notification_frame("n", 11, R"({"id":11})", 2, 0);
	EXPECT_FALSE(nlohmann::json::parse(g->payload()).contains("cursor"));
}

TEST(Cursor, ClientMessageCarriesACheckedCursor)
{
	auto m = parse_client_message(R"({"type":"auth","token":"t","cursor":"v1.9.1.100.11"})");
	EXPECT_EQ(m.type, ClientMessage::Type::Auth);
	ASSERT_TRUE(m.cursor);
	EXPECT_EQ(*m.cursor, "v1.9.1.100.11");
	auto bad = parse_client_message(R"({"type":"auth","token":"t","cursor":"v1.9.x"})");
	EXPECT_EQ(bad.type, ClientMessage::Type::Invalid);
	EXPECT_NE(bad.error.find("cursor"), std::string::npos);
	EXPECT_EQ(parse_client_message(R"({"type":"auth","token":"t","cursor":5})").type,
			  ClientMessage::Type::Invalid);
	EXPECT_FALSE(parse_client_message(R"({"type":"auth","token":"t","cursor":null})").cursor);
}

/* A resume by cursor: listed ids are had (never replayed, never sent live again). */
TEST(Cursor, GateTreatsListedIdsAsHad)
{
	ResumeGate g;
	ResumeLimits lim;
	g.begin_cursor("n", {11}, lim);
	auto req = g.next_page();
	ASSERT_TRUE(req);
	EXPECT_EQ(req->after_id, INT64_MIN);
	std::vector<std::pair<int64_t, FramePtr>> rows;
	rows.emplace_back(10, make_notification_frame("n", 10, "{}", std::nullopt, 0));
	rows.emplace_back(11, make_notification_frame("n", 11, "{}", std::nullopt, 0));
	g.on_page(std::move(rows), false);
	FramePtr f = g.pull(0, 1 << 20);
	ASSERT_TRUE(f);
	EXPECT_EQ(f->id, 10);
	EXPECT_EQ(g.on_live(make_notification_frame("n", 11, "{}", std::nullopt, 0)),
			  ResumeGate::Live::Drop);
	EXPECT_EQ(g.on_live(make_notification_frame("n", 10, "{}", std::nullopt, 0)),
			  ResumeGate::Live::Drop);
	EXPECT_EQ(g.on_live(make_notification_frame("n", 9, "{}", std::nullopt, 0)),
			  ResumeGate::Live::Held);
}
