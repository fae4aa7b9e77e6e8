/*
 * test_handshake_check.cpp: the opening-handshake checks (issue 12, finding 8).
 */
#include "handshake_check.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

namespace
{

UpgradeHeaders
good()
{
	UpgradeHeaders h;
	h.http_version = "HTTP/1.1";
	h.upgrade = "websocket";
	h.has_version = true;
	h.version = "13";
	h.has_key = true;
	h.key = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 1.3's example */
	return h;
}

std::string
verdict(const UpgradeHeaders &h)
{
	UpgradeVerdict v = check_upgrade(h);
	return v.status ? std::to_string(v.status) + ":" + v.reason : "ok";
}

} // namespace

TEST(HandshakeCheck, AGoodUpgradePasses)
{
	EXPECT_EQ(verdict(good()), "ok");
	UpgradeHeaders h = good();
	h.upgrade = "WebSocket";
	EXPECT_EQ(verdict(h), "ok");
}

TEST(HandshakeCheck, VersionMustBe13)
{
	UpgradeHeaders h = good();
	h.has_version = false;
	h.version = "";
	EXPECT_EQ(verdict(h), "426:websocket_version");
	EXPECT_TRUE(check_upgrade(h).want_version);
	for (const char *v : {"8", "12", "14", "13, 8", " 13", "013", "", "thirteen"})
	{
		h = good();
		h.version = v;
		EXPECT_EQ(verdict(h), "426:websocket_version") << v;
	}
}

TEST(HandshakeCheck, KeyMustBeA16ByteNonce)
{
	UpgradeHeaders h = good();
	h.has_key = false;
	h.key = "";
	EXPECT_EQ(verdict(h), "400:websocket_key");
	for (const char *k : {"", "x", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ===",
						  "dGhlIHNhbXBsZSBub25jZR==", /* non-zero padding bits */
						  "dGhlIHNhbXBsZSBub25j!Q==", "dGhlIHNhbXBsZSBub25jZQ=A",
						  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 24 bytes */
						  "dGhlIHNhbXBsZSBub25jZQ==\r\n"})
	{
		h = good();
		h.key = k;
		EXPECT_EQ(verdict(h), "400:websocket_key") << k;
	}
	EXPECT_TRUE(is_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
	EXPECT_TRUE(is_websocket_key("/////////////////////w=="));
}

TEST(HandshakeCheck, Http10AndOtherVersionsAreRefused)
{
	for (const char *v : {"HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "", "http/1.1"})
	{
		UpgradeHeaders h = good();
		h.http_version = v;
		EXPECT_EQ(verdict(h), "400:http_version") << v;
	}
}

TEST(HandshakeCheck, OnlyWebsocketUpgrades)
{
	for (const char *u : {"h2c", "H2C", "", "websocket, h2c", "TLS/1.0", "websockets"})
	{
		UpgradeHeaders h = good();
		h.upgrade = u;
		EXPECT_EQ(verdict(h), "400:upgrade_not_websocket") << u;
	}
}
