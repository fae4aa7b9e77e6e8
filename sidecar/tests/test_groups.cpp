/*
 * test_groups.cpp: per-user socket groups and limits.
 */
#include "groups.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

TEST(Groups, TabsOfOneUserShareAGroup)
{
	GroupRegistry<int> g(100, 10);
	EXPECT_TRUE(g.add("42", 1));  /* first socket: user becomes active */
	EXPECT_FALSE(g.add("42", 2)); /* second tab */
	EXPECT_TRUE(g.add("7", 3));
	ASSERT_NE(g.find("42"), nullptr);
	EXPECT_EQ(g.find("42")->size(), 2u);
	EXPECT_EQ(g.find("nobody"), nullptr);
	EXPECT_EQ(g.sockets(), 3u);
	EXPECT_EQ(g.users(), 2u);

	EXPECT_FALSE(g.remove("42", 1));
	EXPECT_EQ(g.find("42")->size(), 1u);
	EXPECT_EQ((*g.find("42"))[0], 2);
	EXPECT_TRUE(g.remove("42", 2)); /* last socket: user becomes inactive */
	EXPECT_EQ(g.find("42"), nullptr);
	EXPECT_FALSE(g.remove("42", 2)); /* double remove is harmless */
	EXPECT_EQ(g.sockets(), 1u);
}

TEST(Groups, PerUserLimit)
{
	GroupRegistry<int> g(100, 2);
	g.add("u", 1);
	EXPECT_EQ(g.admit("u"), Admission::Ok);
	g.add("u", 2);
	EXPECT_EQ(g.admit("u"), Admission::UserLimit);
	EXPECT_EQ(g.admit("v"), Admission::Ok);
}

TEST(Groups, TotalLimitCountsReservations)
{
	GroupRegistry<int> g(2, 2);
	g.add("u", 1);
	EXPECT_TRUE(g.reserve());
	EXPECT_EQ(g.admit("v"), Admission::TotalLimit);
	EXPECT_FALSE(g.reserve());
	g.unreserve();
	EXPECT_EQ(g.admit("v"), Admission::Ok);
	g.set_limits(1, 1);
	EXPECT_EQ(g.admit("v"), Admission::TotalLimit);
}

TEST(Groups, ActiveUsersFilter)
{
	ActiveUsers a;
	a.activate("1");
	a.activate("3");
	auto f = a.filter({"1", "2", "3"});
	EXPECT_EQ(f, (std::vector<bool>{true, false, true}));
	a.deactivate("1");
	EXPECT_EQ(a.filter({"1"}), std::vector<bool>{false});
	EXPECT_EQ(a.size(), 1u);
}
