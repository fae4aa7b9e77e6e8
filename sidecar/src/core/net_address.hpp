/*
 * net_address.hpp: IP addresses, CIDR ranges and the client address behind a
 * trusted proxy.  No sockets here (inet_pton only), so it is unit-tested.
 *
 * The client address is what per-address limits count (core/address_limits.hpp).
 * Behind a reverse proxy every TCP peer is the proxy, so the address is taken
 * from X-Forwarded-For -- but only when the TCP peer is one of the configured
 * trusted proxies: a client talking to us directly could write any header.
 * Each proxy appends the address it received the request from, so the list is
 * read from the right and the first hop that is not itself a trusted proxy is
 * the client (the right-most untrusted address, as nginx's
 * real_ip_recursive does).  Hops to its left were written by that client and
 * are never believed.
 */
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace livenotify
{

/* An IPv4 or IPv6 address; IPv4 is kept as its IPv4-mapped IPv6 form (::ffff:a.b.c.d). */
struct IpAddress
{
	std::array<uint8_t, 16> bytes{};
	bool v4 = false; /* written as IPv4 (or IPv4-mapped IPv6) */

	/* A literal: "192.0.2.1", "2001:db8::1", "[2001:db8::1]", "::ffff:192.0.2.1".  No names. */
	static std::optional<IpAddress> parse(std::string_view text);
	std::string str() const;  /* canonical text: dotted quad for IPv4, RFC 5952 for IPv6 */
	bool is_loopback() const; /* 127.0.0.0/8 or ::1 */
	bool operator==(const IpAddress &o) const
	{
		return bytes == o.bytes;
	}
};

/* "10.0.0.0/8", "2001:db8::/32", or one address ("192.0.2.7" = /32, "::1" = /128). */
struct Cidr
{
	IpAddress base;
	int prefix = 0; /* in bits of the 128-bit (IPv4-mapped) form */

	static std::optional<Cidr> parse(std::string_view text);
	bool contains(const IpAddress &a) const;
};

bool in_any(const std::vector<Cidr> &ranges, const IpAddress &a);

/*
 * The client address of a request whose TCP peer is `peer` and whose
 * X-Forwarded-For header (all of its lines joined with ',') is `xff` (empty:
 * none).  The peer itself unless it is in `trusted`; then the right-most hop
 * of xff that is not in `trusted`.  A hop that is not an IP literal ends the
 * walk: that hop's writer is not trusted, so the last trusted address read is
 * the answer (a garbled header makes the proxy itself the client, which is
 * safe: it is limited, not believed).  nullopt if peer is not an address.
 */
std::optional<IpAddress> client_address(const std::string &peer, std::string_view xff,
										const std::vector<Cidr> &trusted);

} // namespace livenotify
