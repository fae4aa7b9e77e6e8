/*
 * handshake_check.cpp: see handshake_check.hpp.
 */
#include "handshake_check.hpp"

#include <cctype>
#include <cstring>

namespace livenotify
{

namespace
{

bool
iequals(std::string_view a, const char *b)
{
	size_t n = strlen(b);
	if (a.size() != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (std::tolower(static_cast<unsigned char>(a[i])) !=
			std::tolower(static_cast<unsigned char>(b[i])))
			return false;
	return true;
}

bool
is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
		   c == '/';
}

UpgradeVerdict
refuse(int status, const char *reason, bool want_version = false)
{
	UpgradeVerdict v;
	v.status = status;
	v.reason = reason;
	v.want_version = want_version;
	return v;
}

} // namespace

bool
is_websocket_key(std::string_view t)
{
	/*
	 * 16 bytes are 22 base64 characters and "==".  The 22nd character carries
	 * the last 2 bits of the 16th byte and 4 zero bits, so it is one of A, Q,
	 * g, w in the canonical encoding every client produces.
	 */
	if (t.size() != 24 || t[22] != '=' || t[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64(t[i]))
			return false;
	return strchr("AQgw", t[21]) != nullptr;
}

UpgradeVerdict
check_upgrade(const UpgradeHeaders &h)
{
	if (!iequals(h.upgrade, "websocket"))
		return refuse(400, "upgrade_not_websocket");
	/* RFC 6455 4.1: "The method of the request MUST be GET, and the HTTP version MUST be at
	 * least 1.1."  A later version never reaches an HTTP/1 upgrade. */
	if (h.http_version != "HTTP/1.1")
		return refuse(400, "http_version");
	/* RFC 6455 4.2.2 / 4.4: an unsupported (or missing) version is answered with 426 and
	 * the version the server speaks. */
	if (!h.has_version || h.version != "13")
		return refuse(426, "websocket_version", true);
	if (!h.has_key || !is_websocket_key(h.key))
		return refuse(400, "websocket_key");
	return {};
}

} // namespace livenotify
