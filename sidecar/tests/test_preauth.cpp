/*
 * test_preauth.cpp: the pre-authentication budget (core/preauth.hpp).
 */
#include "preauth.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

TEST(PreAuth, OldestIsEvictedWhenFull)
{
	PreAuthBudget b(3);
	EXPECT_FALSE(b.admit(1));
	EXPECT_FALSE(b.admit(2));
	EXPECT_FALSE(b.admit(3));
	EXPECT_EQ(b.size(), 3u);
	auto e = b.admit(4);
	ASSERT_TRUE(e);
	EXPECT_EQ(*e, 1u);
	EXPECT_FALSE(b.contains(1));
	EXPECT_TRUE(b.contains(4));
	EXPECT_EQ(b.size(), 3u);
	EXPECT_EQ(*b.admit(5), 2u);
}

TEST(PreAuth, AuthenticatedOrClosedFreesItsPlace)
{
	PreAuthBudget b(2);
	b.admit(1);
	b.admit(2);
	b.remove(1); /* authenticated */
	EXPECT_FALSE(b.admit(3));
	EXPECT_EQ(*b.admit(4), 2u); /* 2 is now the oldest */
	b.remove(99);				/* unknown: ignored */
	b.remove(3);
	b.remove(3); /* twice: harmless */
	EXPECT_EQ(b.size(), 1u);
}

TEST(PreAuth, SmallerLimitAfterReload)
{
	PreAuthBudget b(4);
	for (uint64_t i = 1; i <= 4; i++)
		b.admit(i);
	b.set_limit(2);
	EXPECT_EQ(*b.admit(5), 1u); /* one eviction per admission */
	EXPECT_EQ(b.size(), 4u);
	b.set_limit(0); /* clamped to 1 */
	EXPECT_EQ(b.limit(), 1u);
}
