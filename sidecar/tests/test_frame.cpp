/*
 * test_frame.cpp: frames are spliced from the row JSON, and still valid JSON.
 */
#include "frame.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace livenotify;
using nlohmann::json;

TEST(Frame, NotificationSplicesRowAndCount)
{
	const std::string row =
		R"({"id":17,"user_id":42,"type":"like","text":"héllo \"x\"","is_read":false})";
	FramePtr f = make_notification_frame("api_notification", 17, row, 3, 16);
	EXPECT_EQ(f->headroom, 16u);
	EXPECT_EQ(f->size(), f->payload().size());
	EXPECT_EQ(std::string(f->payload()),
			  R"({"type":"notification","source":"api_notification","id":17,"notification":)" +
				  row + R"(,"unread_count":3})");
	json j = json::parse(f->payload());
	EXPECT_EQ(j["notification"]["text"], "héllo \"x\"");
	EXPECT_EQ(f->id, 17);
	EXPECT_EQ(f->source, "api_notification");
	EXPECT_EQ(f->kind, FrameKind::Notification);
}

TEST(Frame, NotificationWithoutCount)
{
	FramePtr f = make_notification_frame("t", 1, R"({"id":1})", std::nullopt, 0);
	EXPECT_EQ(std::string(f->payload()),
			  R"({"type":"notification","source":"t","id":1,"notification":{"id":1}})");
}

TEST(Frame, SourceIsEscaped)
{
	FramePtr f = make_notification_frame("we\"ird\n", 1, "{}", 0, 0);
	json j = json::parse(f->payload());
	EXPECT_EQ(j["source"], "we\"ird\n");
}

TEST(Frame, FindTopLevelId)
{
	EXPECT_EQ(find_top_level_int(R"({"id":5,"x":1})", "id"), 5);
	EXPECT_EQ(find_top_level_int(R"({"x":{"id":9},"id":6})", "id"), 6);
	EXPECT_EQ(find_top_level_int(R"({"arr":[{"id":1}],"pk":12345678901})", "pk"), 12345678901LL);
	EXPECT_EQ(find_top_level_int(R"({"id":7,"truncated":true})", "id"), 7);
	EXPECT_EQ(find_top_level_int(R"({"id":"7"})", "id"), std::nullopt);
	EXPECT_EQ(find_top_level_int(R"({"id":{"a":1}})", "id"), std::nullopt);
	EXPECT_EQ(find_top_level_int(R"({"x":1})", "id"), std::nullopt);
	EXPECT_EQ(find_top_level_int(R"([{"id":1}])", "id"), std::nullopt);
	EXPECT_EQ(find_top_level_int("garbage", "id"), std::nullopt);
	EXPECT_EQ(find_top_level_int("", "id"), std::nullopt);
	/* Stops at the id: what follows is not even read. */
	EXPECT_EQ(find_top_level_int(R"({"id":3, BROKEN)", "id"), 3);
}

TEST(Frame, EphemeralMembersSpliced)
{
	FramePtr f = make_ephemeral_frame(
		"new_message", std::string_view(R"({"message": {"from": "ann", "text": "hi"}})"), 0);
	json j = json::parse(f->payload());
	EXPECT_EQ(j["type"], "new_message");
	EXPECT_EQ(j["message"]["text"], "hi");
	EXPECT_EQ(f->kind, FrameKind::Ephemeral);
}

TEST(Frame, EphemeralEmptyAndNull)
{
	EXPECT_EQ(std::string(make_ephemeral_frame("ping", std::string_view("{}"), 0)->payload()),
			  R"({"type":"ping"})");
	EXPECT_EQ(std::string(make_ephemeral_frame("ping", std::nullopt, 0)->payload()),
			  R"({"type":"ping"})");
}

TEST(Frame, EphemeralNonObjectOrTypeClashIsWrapped)
{
	json a = json::parse(make_ephemeral_frame("k", std::string_view("[1,2]"), 0)->payload());
	EXPECT_EQ(a["payload"], json::parse("[1,2]"));
	json b = json::parse(
		make_ephemeral_frame("k", std::string_view(R"({"type": "x", "v": 1})"), 0)->payload());
	EXPECT_EQ(b["type"], "k");
	EXPECT_EQ(b["payload"]["type"], "x");
	json c = json::parse(make_ephemeral_frame("k", std::string_view("not json"), 0)->payload());
	EXPECT_EQ(c["payload"], "not json");
}

TEST(Frame, ControlFrames)
{
	EXPECT_EQ(std::string(make_unread_count_frame("api_notification", 4, 0)->payload()),
			  R"({"type":"unread_count","source":"api_notification","unread_count":4})");
	EXPECT_EQ(std::string(make_hello_frame("42", 77, 0)->payload()),
			  R"({"type":"hello","protocol":1,"user":"42","epoch":77})");
	EXPECT_EQ(std::string(make_resync_frame("lost", 0)->payload()),
			  R"({"type":"resync","reason":"lost"})");
}
