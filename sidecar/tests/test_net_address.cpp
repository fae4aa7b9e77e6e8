/*
 * test_net_address.cpp: address literals, CIDR ranges, the client behind a
 * trusted proxy (X-Forwarded-For), per-address limits, the descriptor plan.
 */
#include "address_limits.hpp"
#include "fd_budget.hpp"
#include "net_address.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

namespace
{

std::vector<Cidr>
ranges(std::initializer_list<const char *> list)
{
	std::vector<Cidr> out;
	for (const char *t : list)
		out.push_back(*Cidr::parse(t));
	return out;
}

std::string
client(const char *peer, const char *xff, const std::vector<Cidr> &trusted)
{
	std::optional<IpAddress> a = client_address(peer, xff, trusted);
	return a ? a->str() : "none";
}

} // namespace

TEST(NetAddress, Literals)
{
	EXPECT_EQ(IpAddress::parse("192.0.2.1")->str(), "192.0.2.1");
	EXPECT_EQ(IpAddress::parse(" 2001:DB8::1 ")->str(), "2001:db8::1");
	EXPECT_EQ(IpAddress::parse("[::1]")->str(), "::1");
	/* IPv4-mapped IPv6 is the IPv4 address (a dual-stack socket reports peers that way). */
	EXPECT_EQ(IpAddress::parse("::ffff:192.0.2.1")->str(), "192.0.2.1");
	EXPECT_TRUE(*IpAddress::parse("::ffff:192.0.2.1") == *IpAddress::parse("192.0.2.1"));
	for (const char *bad : {"", "localhost", "127.", "127.example.com", "1.2.3.4:80", "1.2.3",
							"fe80::1%eth0", "unknown", "01.2.3.4.5", "::g"})
		EXPECT_FALSE(IpAddress::parse(bad).has_value()) << bad;
}

TEST(NetAddress, Loopback)
{
	EXPECT_TRUE(IpAddress::parse("127.0.0.1")->is_loopback());
	EXPECT_TRUE(IpAddress::parse("127.255.0.9")->is_loopback());
	EXPECT_TRUE(IpAddress::parse("::1")->is_loopback());
	EXPECT_TRUE(IpAddress::parse("::ffff:127.0.0.1")->is_loopback());
	EXPECT_FALSE(IpAddress::parse("128.0.0.1")->is_loopback());
	EXPECT_FALSE(IpAddress::parse("::")->is_loopback());
	EXPECT_FALSE(IpAddress::parse("::2")->is_loopback());
	EXPECT_FALSE(IpAddress::parse("0.0.0.0")->is_loopback());
}

TEST(NetAddress, Cidr)
{
	Cidr ten = *Cidr::parse("10.0.0.0/8");
	EXPECT_TRUE(ten.contains(*IpAddress::parse("10.255.1.2")));
	EXPECT_FALSE(ten.contains(*IpAddress::parse("11.0.0.1")));
	/* Host bits in the base are ignored, as in PostgreSQL's pg_hba.conf. */
	EXPECT_TRUE(Cidr::parse("10.1.2.3/16")->contains(*IpAddress::parse("10.1.200.1")));
	EXPECT_FALSE(Cidr::parse("10.1.2.3/16")->contains(*IpAddress::parse("10.2.0.1")));
	EXPECT_TRUE(Cidr::parse("192.0.2.128/25")->contains(*IpAddress::parse("192.0.2.200")));
	EXPECT_FALSE(Cidr::parse("192.0.2.128/25")->contains(*IpAddress::parse("192.0.2.127")));
	EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
	/* An IPv4 range holds no IPv6 address other than the mapped form. */
	EXPECT_FALSE(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("2001:db8::1")));
	EXPECT_TRUE(Cidr::parse("2001:db8::/32")->contains(*IpAddress::parse("2001:db8:ffff::1")));
	EXPECT_FALSE(Cidr::parse("2001:db8::/32")->contains(*IpAddress::parse("2001:db9::1")));
	EXPECT_TRUE(Cidr::parse("192.0.2.7")->contains(*IpAddress::parse("192.0.2.7")));
	EXPECT_FALSE(Cidr::parse("192.0.2.7")->contains(*IpAddress::parse("192.0.2.6")));
	for (const char *bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "name/8",
							"10.0.0.0/08x", "10.0.0.0/1000"})
		EXPECT_FALSE(Cidr::parse(bad).has_value()) << bad;
}

TEST(NetAddress, ForwardedForOnlyFromTrustedProxies)
{
	auto proxies = ranges({"10.0.0.0/8", "192.0.2.1"});
	/* No trusted proxies: the header is ignored, whatever it says. */
	EXPECT_EQ(client("203.0.113.5", "198.51.100.1", {}), "203.0.113.5");
	/* A peer that is not a trusted proxy: ignored too. */
	EXPECT_EQ(client("203.0.113.5", "198.51.100.1", proxies), "203.0.113.5");
	/* A trusted proxy: the right-most hop. */
	EXPECT_EQ(client("10.0.0.2", "198.51.100.1", proxies), "198.51.100.1");
	/* Forged hops on the left (written by the client) are not believed. */
	EXPECT_EQ(client("10.0.0.2", "1.1.1.1, 2.2.2.2, 198.51.100.1", proxies), "198.51.100.1");
	/* Chained trusted proxies are skipped: the right-most untrusted hop. */
	EXPECT_EQ(client("10.0.0.2", "1.1.1.1, 198.51.100.1, 192.0.2.1, 10.9.9.9", proxies),
			  "198.51.100.1");
	/* Every hop trusted: the left-most one (the first proxy's own peer). */
	EXPECT_EQ(client("10.0.0.2", "10.0.0.7, 192.0.2.1", proxies), "10.0.0.7");
	/* A garbled hop stops the walk at the last trusted address. */
	EXPECT_EQ(client("10.0.0.2", "198.51.100.1, unknown", proxies), "10.0.0.2");
	EXPECT_EQ(client("10.0.0.2", "198.51.100.1:4321", proxies), "10.0.0.2");
	EXPECT_EQ(client("10.0.0.2", "198.51.100.1, 10.0.0.3:80", proxies), "10.0.0.2");
	/* Empty elements and an empty header. */
	EXPECT_EQ(client("10.0.0.2", "198.51.100.1, ,", proxies), "198.51.100.1");
	EXPECT_EQ(client("10.0.0.2", "", proxies), "10.0.0.2");
	/* IPv6 hops, bracketed or not. */
	EXPECT_EQ(client("10.0.0.2", "[2001:db8::5]", proxies), "2001:db8::5");
	EXPECT_EQ(client("::ffff:10.0.0.2", "2001:db8::5", proxies), "2001:db8::5");
	/* A peer that is not an address at all (lws could not read it). */
	EXPECT_EQ(client("", "198.51.100.1", proxies), "none");
}

TEST(AddressLimits, SocketsAndPendingPerAddress)
{
	AddressLimits l(3, 2);
	EXPECT_EQ(l.admit("a", true), AddressAdmission::Ok);
	EXPECT_EQ(l.admit("a", true), AddressAdmission::Ok);
	EXPECT_EQ(l.admit("a", true), AddressAdmission::PendingLimit);
	EXPECT_EQ(l.admit("b", true), AddressAdmission::Ok); /* another address is not affected */
	EXPECT_EQ(l.admit("a", false), AddressAdmission::Ok);
	EXPECT_EQ(l.admit("a", false), AddressAdmission::SocketLimit);
	EXPECT_EQ(l.sockets("a"), 3u);
	EXPECT_EQ(l.pending("a"), 2u);
	l.authenticated("a");
	EXPECT_EQ(l.pending("a"), 1u);
	EXPECT_EQ(l.admit("a", true), AddressAdmission::SocketLimit);
	l.release("a", false);
	EXPECT_EQ(l.admit("a", true), AddressAdmission::Ok);
	EXPECT_EQ(l.pending("a"), 2u);
	for (int i = 0; i < 3; i++)
		l.release("a", i < 2);
	EXPECT_EQ(l.sockets("a"), 0u);
	EXPECT_EQ(l.pending("a"), 0u);
	l.release("b", true);
	/* The table holds only addresses with sockets, refused ones included. */
	EXPECT_EQ(l.addresses(), 0u);
	AddressLimits none(0, 1);
	EXPECT_EQ(none.admit("c", false), AddressAdmission::SocketLimit);
	EXPECT_EQ(none.addresses(), 0u);
}

TEST(FdBudget, PlanAgainstTheLimit)
{
	FdPlan p = plan_fds(100000, 20000, 256, 3);
	EXPECT_TRUE(p.ok);
	EXPECT_FALSE(p.clamped);
	EXPECT_EQ(p.max_sockets, 20000);
	EXPECT_EQ(p.socket_cap, 100000u - kFdFixedReserve - 6);
	/* Too small for max_sockets: clamped, with the numbers in the message. */
	p = plan_fds(1024, 20000, 256, 3);
	EXPECT_TRUE(p.ok);
	EXPECT_TRUE(p.clamped);
	EXPECT_EQ(p.max_sockets,
			  static_cast<int>(1024 - kFdFixedReserve - 6 - kFdUpgradeHeadroom - 256));
	EXPECT_NE(p.message.find("RLIMIT_NOFILE 1024"), std::string::npos) << p.message;
	EXPECT_EQ(p.socket_cap, 1024u - kFdFixedReserve - 6);
	/* Not even one socket: refuse. */
	p = plan_fds(300, 20000, 256, 3);
	EXPECT_FALSE(p.ok);
	EXPECT_NE(p.message.find("cannot hold one socket"), std::string::npos) << p.message;
}

TEST(FdBudget, AcceptBackoffLogsOncePerInterval)
{
	AcceptBackoff b;
	AcceptBackoff::Decision d = b.on_failure(10000);
	EXPECT_TRUE(d.log);
	EXPECT_EQ(d.failures, 1u);
	EXPECT_GT(d.pause_ms, 0);
	for (int i = 1; i < 50; i++)
		EXPECT_FALSE(b.on_failure(10000 + i * 10).log);
	d = b.on_failure(10000 + AcceptBackoff::kLogIntervalMs);
	EXPECT_TRUE(d.log);
	EXPECT_EQ(d.failures, 50u); /* the 49 unlogged ones and this one */
	EXPECT_EQ(b.total(), 51u);
}
