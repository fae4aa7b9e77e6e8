/*
 * test_unread_cache.cpp: snapshot visibility and the cached unread counts
 * (an entry already in the fetched count is not counted twice, one after it
 * is, a read row never is; forget, TRUNCATE, TTL).
 */
#include "unread_cache.hpp"

#include <gtest/gtest.h>

#include <memory>

using namespace livenotify;
using namespace std::chrono_literals;

namespace
{
const std::string kSource = "api_notification";

std::shared_ptr<const PgSnapshot>
snap(const char *text)
{
	auto s = PgSnapshot::parse(text);
	EXPECT_TRUE(s.has_value()) << text;
	return std::make_shared<const PgSnapshot>(*s);
}

} // namespace

TEST(PgSnapshot, ParsesPostgresText)
{
	auto s = PgSnapshot::parse("100:110:108,103,105");
	ASSERT_TRUE(s);
	EXPECT_EQ(s->xmin, 100u);
	EXPECT_EQ(s->xmax, 110u);
	EXPECT_EQ(s->xip, (std::vector<uint64_t>{103, 105, 108}));
	auto empty = PgSnapshot::parse("745:745:");
	ASSERT_TRUE(empty);
	EXPECT_TRUE(empty->xip.empty());
}

TEST(PgSnapshot, RejectsMalformedText)
{
	for (const char *bad : {"", "1", "1:2", "a:2:", "5:4:", "1:5:7", "1:5:0", "1:5:2,", "1:5:,2",
							"1:5:2,x", "-1:5:", "1 :5:", "18446744073709551616:1:"})
		EXPECT_FALSE(PgSnapshot::parse(bad)) << bad;
}

TEST(PgSnapshot, Visibility)
{
	auto s = *PgSnapshot::parse("100:110:103,105");
	EXPECT_TRUE(s.visible(1));
	EXPECT_TRUE(s.visible(99));
	EXPECT_TRUE(s.visible(100)); /* xmin itself finished, unless listed as running */
	EXPECT_TRUE(s.visible(104));
	EXPECT_FALSE(s.visible(103)); /* running when the snapshot was taken */
	EXPECT_FALSE(s.visible(105));
	EXPECT_FALSE(s.visible(110)); /* xmax: not yet started */
	EXPECT_FALSE(s.visible(5000));
}

TEST(UnreadCache, CountsOnlyRowsTheSnapshotDidNotSee)
{
	UnreadCache c(60s);
	auto now = UnreadCache::Clock::now();
	c.put(kSource, "7", 10, snap("100:110:103"), now);
	EXPECT_TRUE(c.fresh(kSource, "7", now));
	/* Committed before the count: already in the 10. */
	EXPECT_EQ(c.on_notification(kSource, "7", 104, true), 10);
	EXPECT_EQ(c.on_notification(kSource, "7", 50, true), 10);
	/* Running, or started after: new. */
	EXPECT_EQ(c.on_notification(kSource, "7", 103, true), 11);
	EXPECT_EQ(c.on_notification(kSource, "7", 110, true), 12);
	/* A row inserted as read does not count. */
	EXPECT_EQ(c.on_notification(kSource, "7", 111, false), 12);
	EXPECT_EQ(c.get(kSource, "7"), 12);
}

TEST(UnreadCache, UsersAndSourcesAreSeparate)
{
	UnreadCache c(60s);
	auto now = UnreadCache::Clock::now();
	c.put(kSource, "7", 1, snap("10:10:"), now);
	c.put(kSource, "8", 5, snap("10:10:"), now);
	c.put("other", "7", 100, snap("10:10:"), now);
	EXPECT_EQ(c.on_notification(kSource, "7", 20, true), 2);
	EXPECT_EQ(c.get(kSource, "8"), 5);
	EXPECT_EQ(c.get("other", "7"), 100);
	EXPECT_FALSE(c.on_notification(kSource, "9", 20, true)); /* nothing cached */
	/* Source and user are separate keys: "a"+"bc" is not "ab"+"c". */
	c.put("a", "bc", 1, snap("10:10:"), now);
	EXPECT_FALSE(c.get("ab", "c"));
}

TEST(UnreadCache, ForgetAndTruncate)
{
	UnreadCache c(60s);
	auto now = UnreadCache::Clock::now();
	c.put(kSource, "7", 1, snap("10:10:"), now);
	c.put(kSource, "8", 1, snap("10:10:"), now);
	c.put(kSource + "_x", "7", 1, snap("10:10:"), now);
	c.forget(kSource, "7");
	EXPECT_FALSE(c.get(kSource, "7"));
	EXPECT_FALSE(c.fresh(kSource, "7", now));
	c.forget_source(kSource);
	EXPECT_FALSE(c.get(kSource, "8"));
	/* A source whose name starts with the truncated one's keeps its counts. */
	EXPECT_EQ(c.get(kSource + "_x", "7"), 1);
}

TEST(UnreadCache, TtlExpires)
{
	UnreadCache c(1000ms);
	auto t0 = UnreadCache::Clock::now();
	c.put(kSource, "7", 3, snap("10:10:"), t0);
	c.put(kSource, "8", 3, snap("10:10:"), t0 + 800ms);
	EXPECT_TRUE(c.fresh(kSource, "7", t0 + 999ms));
	EXPECT_FALSE(c.fresh(kSource, "7", t0 + 1000ms));
	c.expire(t0 + 1500ms);
	EXPECT_FALSE(c.get(kSource, "7"));
	EXPECT_EQ(c.get(kSource, "8"), 3);
	EXPECT_EQ(c.size(), 1u);
}

TEST(UnreadCache, DisabledOrWithoutSnapshotCachesNothing)
{
	auto now = UnreadCache::Clock::now();
	UnreadCache off(0ms);
	off.put(kSource, "7", 3, snap("10:10:"), now);
	EXPECT_FALSE(off.get(kSource, "7"));
	EXPECT_FALSE(off.fresh(kSource, "7", now));

	UnreadCache c(60s);
	c.put(kSource, "7", 3, snap("10:10:"), now);
	c.put(kSource, "7", 4, nullptr, now); /* no snapshot: the old count is stale too */
	EXPECT_FALSE(c.get(kSource, "7"));
}
