// Client -> server WebSocket messages: the first message (auth, resume) and anything a
// client sends afterwards.  Whatever the bytes, parse_client_message returns a value.
#include "client_message.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view text(reinterpret_cast<const char *>(data), size);
	livenotify::ClientMessage m = livenotify::parse_client_message(text);
	// What the server reads from a parsed message must be consistent with its type.
	if (m.type == livenotify::ClientMessage::Type::Invalid && m.error.empty())
		__builtin_trap();
	if (m.last_id && *m.last_id < 0)
		__builtin_trap();
	return 0;
}
