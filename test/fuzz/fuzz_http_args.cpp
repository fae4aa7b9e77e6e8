// The upgrade request's outside input that the daemon itself parses: ?last_id=, the
// Sec-WebSocket-Protocol header (token as a second entry) and the Origin header.  The input
// is split on NUL bytes into those three fields.
#include "client_message.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);
	std::string_view field[3];
	for (int i = 0; i < 3; i++)
	{
		size_t nul = in.find('\0');
		field[i] = in.substr(0, nul);
		in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
	}
	auto id = livenotify::parse_id(field[0]);
	if (id && *id < 0)
		__builtin_trap(); // a resume point is never negative
	std::string tok = livenotify::token_from_protocol_header(field[1], "livenotify.v1");
	// The token is a piece of the header (a "bearer.livenotify.v1" entry may yield the
	// protocol name itself: that is only a bad token, refused by verification).
	if (tok.size() > field[1].size() || field[1].find(tok) == std::string_view::npos)
		__builtin_trap();
	static const std::vector<std::string> allow = {"https://app.example", "http://localhost:8000"};
	bool ok = livenotify::origin_allowed(allow, field[2]);
	if (ok && !field[2].empty() && field[2] != allow[0] && field[2] != allow[1])
		__builtin_trap(); // only an exact match (or no Origin) passes
	return 0;
}
