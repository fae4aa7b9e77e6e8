// Client -> server WebSocket messages: the first message (auth, resume) and anything a
// client sends afterwards, and resume cursors (?cursor= and "cursor").  Whatever the bytes,
// parse_client_message and Cursor::parse return a value.
#include "client_message.hpp"
#include "cursor.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
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
	// A cursor the message kept parses, and a cursor re-encodes to one that parses the same.
	if (m.cursor && !livenotify::Cursor::parse(*m.cursor))
		__builtin_trap();
	std::string why;
	if (auto c = livenotify::Cursor::parse(text, &why))
	{
		auto again = livenotify::Cursor::parse(c->encode());
		if (!again || again->encode() != c->encode() ||
			c->had.size() > livenotify::kCursorMaxIdsParsed)
			__builtin_trap();
	}
	else if (why.empty())
		__builtin_trap();
	return 0;
}
