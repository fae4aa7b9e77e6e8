/*
 * net_address.cpp: address literals, CIDR matching, X-Forwarded-For.
 */
#include "net_address.hpp"

#include <arpa/inet.h>
#include <cstring>

namespace livenotify
{

namespace
{

std::string_view
trim(std::string_view s)
{
	while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
		s.remove_prefix(1);
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
		s.remove_suffix(1);
	return s;
}

} // namespace

std::optional<IpAddress>
IpAddress::parse(std::string_view text)
{
	text = trim(text);
	if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
		text = text.substr(1, text.size() - 2);
	/* INET6_ADDRSTRLEN is 46; anything longer is not a literal (and no zone ids: "fe80::1%eth0").
	 */
	if (text.empty() || text.size() >= 46)
		return std::nullopt;
	char buf[46];
	memcpy(buf, text.data(), text.size());
	buf[text.size()] = '\0';
	IpAddress a;
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, buf, &v4) == 1)
	{
		a.bytes[10] = a.bytes[11] = 0xff;
		memcpy(&a.bytes[12], &v4, 4);
		a.v4 = true;
		return a;
	}
	if (inet_pton(AF_INET6, buf, &v6) == 1)
	{
		memcpy(a.bytes.data(), &v6, 16);
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		a.v4 = memcmp(a.bytes.data(), mapped, 12) == 0;
		return a;
	}
	return std::nullopt;
}

std::string
IpAddress::str() const
{
	char buf[INET6_ADDRSTRLEN];
	if (v4)
		inet_ntop(AF_INET, &bytes[12], buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
	return buf;
}

bool
IpAddress::is_loopback() const
{
	if (v4)
		return bytes[12] == 127;
	static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	return memcmp(bytes.data(), one, 16) == 0;
}

std::optional<Cidr>
Cidr::parse(std::string_view text)
{
	text = trim(text);
	size_t slash = text.find('/');
	std::optional<IpAddress> a = IpAddress::parse(text.substr(0, slash));
	if (!a)
		return std::nullopt;
	Cidr c;
	c.base = *a;
	int max = a->v4 ? 32 : 128;
	int bits = max;
	if (slash != std::string_view::npos)
	{
		std::string_view p = text.substr(slash + 1);
		if (p.empty() || p.size() > 3)
			return std::nullopt;
		bits = 0;
		for (char ch : p)
		{
			if (ch < '0' || ch > '9')
				return std::nullopt;
			bits = bits * 10 + (ch - '0');
		}
		if (bits > max)
			return std::nullopt;
	}
	c.prefix = a->v4 ? bits + 96 : bits;
	/* Clear the host bits so that contains() compares whole bytes of the network part. */
	for (int i = 0; i < 16; i++)
	{
		int keep = c.prefix - i * 8;
		if (keep <= 0)
			c.base.bytes[i] = 0;
		else if (keep < 8)
			c.base.bytes[i] &= static_cast<uint8_t>(0xff << (8 - keep));
	}
	return c;
}

bool
Cidr::contains(const IpAddress &a) const
{
	for (int i = 0; i < 16; i++)
	{
		int keep = prefix - i * 8;
		if (keep <= 0)
			return true;
		uint8_t mask = keep >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - keep));
		if ((a.bytes[i] & mask) != base.bytes[i])
			return false;
	}
	return true;
}

bool
in_any(const std::vector<Cidr> &ranges, const IpAddress &a)
{
	for (const auto &r : ranges)
		if (r.contains(a))
			return true;
	return false;
}

std::optional<IpAddress>
client_address(const std::string &peer, std::string_view xff, const std::vector<Cidr> &trusted)
{
	std::optional<IpAddress> cur = IpAddress::parse(peer);
	if (!cur)
		return std::nullopt;
	/* Walk from the right while the address we stand on is a trusted proxy. */
	while (in_any(trusted, *cur) && !xff.empty())
	{
		size_t comma = xff.rfind(',');
		std::string_view hop = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
		xff = comma == std::string_view::npos ? std::string_view() : xff.substr(0, comma);
		hop = trim(hop);
		if (hop.empty())
			continue; /* "a, , b": an empty element says nothing */
		std::optional<IpAddress> next = IpAddress::parse(hop);
		if (!next)
			break; /* not an address (a name, "unknown", a port): stop at the last trusted one */
		cur = next;
	}
	return cur;
}

} // namespace livenotify
