// Payloads that reach frames: livenotify.send() payloads come from any application role
// that may call it, and rows are serialised by the database.  The frame must stay one JSON
// object whose type is the kind, whatever the payload.
#include "frame.hpp"

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);
	(void) livenotify::find_top_level_int(in, "id");
	// Only valid JSON without NUL bytes reaches the daemon (the database's jsonb output, read
	// as a C string through libpq): check the splice on that, only robustness on the rest.
	// (nlohmann stops at a NUL byte, so "1\0garbage" would count as valid JSON here.)
	auto parsed = nlohmann::json::parse(in, nullptr, false);
	auto f = livenotify::make_ephemeral_frame("fuzz_kind", in, 16);
	if (!parsed.is_discarded() && in.find('\0') == std::string_view::npos)
	{
		auto out = nlohmann::json::parse(f->payload(), nullptr, false);
		if (out.is_discarded() || !out.is_object() || out.value("type", "") != "fuzz_kind")
			__builtin_trap();
	}
	auto n = livenotify::make_notification_frame("src", 1, "{\"id\":1}", 3, 16);
	(void) n;
	return 0;
}
