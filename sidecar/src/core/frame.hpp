/*
 * frame.hpp: wire protocol v1 frames (docs/protocol.md), built by splicing.
 *
 * A notification's row arrives from the extension already serialised as JSON
 * (row_to_json).  The hot path never parses and re-serialises it: the frame is
 * the fixed prefix, the escaped source, the id, the row text as is and the
 * count.  Only the row id is located, with nlohmann's SAX parser stopping at
 * the first top-level match (no DOM is built).
 *
 * A frame is built once per entry and shared by every socket of the user;
 * buf starts with `headroom` spare bytes because lws_write() needs LWS_PRE
 * writable bytes before the payload (the core stays free of lws, so the
 * daemon passes LWS_PRE in).
 *
 * Thread: any; a Frame is immutable once queued, except that the lws service
 * thread scribbles the headroom while writing (one write at a time).
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace livenotify
{

enum class FrameKind
{
	Hello,
	Notification,
	UnreadCount,
	Ephemeral,
	Resync,
	Pong /* the answer to a client ping: at most one waits per socket (send_queue.hpp) */
};

struct Frame
{
	FrameKind kind = FrameKind::Ephemeral;
	std::string buf; /* headroom bytes, then the JSON text */
	size_t headroom = 0;
	int64_t id = -1;	/* notification row id, -1 otherwise */
	std::string source; /* notification source, empty otherwise */
	std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

	std::string_view payload() const
	{
		return std::string_view(buf).substr(headroom);
	}
	size_t size() const
	{
		return buf.size() - headroom;
	}
	char *writable_payload()
	{
		return &buf[headroom];
	}
	/*
	 * What holding this frame in a queue really costs, the bound's unit
	 * (send_queue.hpp, resume.hpp): the buffer as allocated (headroom and
	 * spare capacity included), the source's heap copy, the Frame with its
	 * shared_ptr control block, glibc's chunk header of each allocation and
	 * the queue's own slot.  A 15-byte pong costs about 200 bytes; counting
	 * payload bytes only let a socket hold 15 times its bound (issue 12).
	 * Fixed once the frame is queued (it is immutable then).
	 */
	size_t cost() const
	{
		return heap_bytes(buf) + heap_bytes(source) + sizeof(Frame) + kControlBlockBytes +
			   2 * kMallocChunkBytes + sizeof(std::shared_ptr<Frame>);
	}

	/* std::make_shared's control block (two counts and a vtable pointer, x86-64) */
	static constexpr size_t kControlBlockBytes = 16;
	/* glibc malloc: 8 bytes of header per chunk, chunks rounded up to 16 (malloc/malloc.c) */
	static constexpr size_t kMallocChunkBytes = 16;

private:
	static size_t heap_bytes(const std::string &s)
	{
		/* Short strings live inside the object (SSO): no allocation. */
		if (s.capacity() <= 15)
			return 0;
		return s.capacity() + 1 + kMallocChunkBytes;
	}
};

using FramePtr = std::shared_ptr<Frame>;

/* Escape a string as a JSON string literal (quotes included), through nlohmann. */
std::string json_string(std::string_view s);

/*
 * Find the integer value of a top-level key in a JSON object text, stopping
 * at the first match.  nullopt when the text is not an object, the key is
 * absent or its value is not an integer.
 */
std::optional<int64_t> find_top_level_int(std::string_view json, std::string_view key);

/* {"type":"notification","source":S,"id":N,"cursor":K,"notification":ROW,"unread_count":C} (count
 * omitted when nullopt, cursor when empty; a cursor is digits and dots, cursor.hpp).
 * count_error: the count query failed, so "unread_count_error":true stands instead of the
 * count (docs/protocol.md), which a source without a read column simply omits. */
FramePtr make_notification_frame(std::string_view source, int64_t id, std::string_view row_json,
								 std::optional<int64_t> unread, size_t headroom,
								 std::string_view cursor = {}, bool count_error = false);

/* {"type":"unread_count","source":S,"unread_count":C} */
FramePtr make_unread_count_frame(std::string_view source, int64_t unread, size_t headroom);

/*
 * Ephemeral kinds (livenotify.send()): the payload object's members are
 * spliced after "type": {"type":KIND,...members...}.  When the payload is not
 * a JSON object or has its own "type" member (which would clash), it is sent
 * whole as {"type":KIND,"payload":PAYLOAD}.  NULL payload: {"type":KIND}.
 */
FramePtr make_ephemeral_frame(std::string_view kind, const std::optional<std::string_view> &payload,
							  size_t headroom);

/* {"type":"hello","protocol":1,"user":U,"epoch":E} */
FramePtr make_hello_frame(std::string_view user, int64_t epoch, size_t headroom);

/* {"type":"resync","reason":R} */
FramePtr make_resync_frame(std::string_view reason, size_t headroom);

/* {"type":"pong"}, the answer to a client's {"type":"ping"} */
FramePtr make_pong_frame(size_t headroom);

} // namespace livenotify
