/*
 * client_message.hpp: what a client sends us, parsed with nlohmann/json, and
 * the small admission checks on request headers.
 *
 * Client -> server messages are rare (the first message may carry the token
 * and the resume point), so a full parse is fine here.  Anything malformed is
 * reported as Invalid, never thrown.
 *
 * Thread: any (pure functions).
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace livenotify
{

struct ClientMessage
{
	enum class Type
	{
		Auth,	 /* {"type":"auth","token":"...","last_id":N,"cursor":"..."} */
		Resume,	 /* {"type":"resume","last_id":N,"cursor":"..."} (before auth completes only) */
		Ping,	 /* {"type":"ping"}: answered with {"type":"pong"} */
		Unknown, /* valid JSON object with another type: ignored */
		Invalid	 /* not a JSON object, or bad field types */
	};
	Type type = Type::Invalid;
	std::optional<std::string> token;
	std::optional<std::string> user; /* auth none mode */
	std::optional<int64_t> last_id;
	std::optional<std::string> cursor; /* "cursor": a resume cursor, checked by Cursor::parse */
	std::string error;
};

ClientMessage parse_client_message(std::string_view text);

/* A non-negative decimal id ("?last_id=42"); nullopt when not one. */
std::optional<int64_t> parse_id(std::string_view text);

/*
 * Sec-WebSocket-Protocol carries "livenotify.v1, <token>" (or "bearer.<token>"):
 * returns the first entry that is not protocol_name, "bearer." stripped.
 */
std::string token_from_protocol_header(std::string_view header, std::string_view protocol_name);

/*
 * Empty allowlist: everything allowed; "*" allows all; else exact match.  No
 * Origin header (nullopt) is allowed: not a browser, which always sends one on
 * a WebSocket upgrade.  An Origin header that is present but empty is no
 * origin in the list, so a set allowlist refuses it (issue 12, finding 9).
 */
bool origin_allowed(const std::vector<std::string> &allowlist,
					std::optional<std::string_view> origin);

} // namespace livenotify
