/*
 * test_client_message.cpp: client messages and request-header admission helpers.
 */
#include "client_message.hpp"

#include <gtest/gtest.h>

using namespace livenotify;
using T = ClientMessage::Type;

TEST(ClientMessage, AuthWithResume)
{
	auto m = parse_client_message(R"({"type":"auth","token":"abc","last_id":17})");
	EXPECT_EQ(m.type, T::Auth);
	EXPECT_EQ(m.token, "abc");
	EXPECT_EQ(m.last_id, 17);
}

TEST(ClientMessage, ResumeAndPing)
{
	EXPECT_EQ(parse_client_message(R"({"type":"resume","last_id":"5"})").last_id, 5);
	EXPECT_EQ(parse_client_message(R"({"type":"ping"})").type, T::Ping);
	EXPECT_EQ(parse_client_message(R"({"type":"whatever"})").type, T::Unknown);
}

TEST(ClientMessage, GarbageIsInvalidNotFatal)
{
	for (const char *s : {"", "{", "null", "[]", "\"auth\"", "{\"type\":1}",
						  "{\"type\":\"auth\",\"token\":5}", "{\"type\":\"auth\",\"last_id\":-1}",
						  "{\"type\":\"auth\",\"last_id\":\"x\"}", "\xff\xfe garbage"})
		EXPECT_EQ(parse_client_message(s).type, T::Invalid) << s;
}

TEST(ClientMessage, ParseId)
{
	EXPECT_EQ(parse_id("0"), 0);
	EXPECT_EQ(parse_id("123"), 123);
	EXPECT_EQ(parse_id(""), std::nullopt);
	EXPECT_EQ(parse_id("-1"), std::nullopt);
	EXPECT_EQ(parse_id("12a"), std::nullopt);
	EXPECT_EQ(parse_id("9999999999999999999999"), std::nullopt);
}

TEST(ClientMessage, TokenFromProtocolHeader)
{
	EXPECT_EQ(token_from_protocol_header("livenotify.v1, abc123", "livenotify.v1"), "abc123");
	EXPECT_EQ(token_from_protocol_header("bearer.abc, livenotify.v1", "livenotify.v1"), "abc");
	EXPECT_EQ(token_from_protocol_header("livenotify.v1", "livenotify.v1"), "");
	EXPECT_EQ(token_from_protocol_header("", "livenotify.v1"), "");
}

TEST(ClientMessage, OriginAllowlist)
{
	std::vector<std::string> allow = {"https://app.example"};
	EXPECT_TRUE(origin_allowed(allow, "https://app.example"));
	EXPECT_FALSE(origin_allowed(allow, "https://evil.example"));
	EXPECT_TRUE(origin_allowed(allow, std::nullopt)); /* no Origin: not a browser */
	/* Issue 12, finding 9: a present but empty Origin is not in the list. */
	EXPECT_FALSE(origin_allowed(allow, ""));
	EXPECT_FALSE(origin_allowed({"https://app.example", ""}, ""));
	EXPECT_TRUE(origin_allowed({}, ""));
	EXPECT_TRUE(origin_allowed({}, "https://evil.example"));
	EXPECT_TRUE(origin_allowed({"*"}, "https://evil.example"));
}
