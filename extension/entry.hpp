/*-------------------------------------------------------------------------
 *
 * entry.hpp
 *	  The layout of one queue entry, shared by the pending list (backend
 *	  memory) and the ring (shared memory).
 *
 * An entry is built once, in its final layout, when the trigger fires or
 * send() is called; the commit callback then only copies bytes into the
 * ring and stamps the sequence number and the transaction id.  Nothing on
 * the commit path formats, allocates or can fail.
 *
 *	  [EntryHeader][source][kind][user key][payload][padding to 8]
 *
 * Strings are stored without terminators; lengths are in the header.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace livenotify
{

enum EntryFlags : uint16_t
{
	ENTRY_SOURCE_NULL = 1 << 0,
	ENTRY_PAYLOAD_NULL = 1 << 1,
	/*
	 * A 'notification' of a source with a read column: ENTRY_UNREAD says
	 * whether the inserted row counts as unread.  Without this flag (other
	 * kinds, sources without a read column) read() returns unread NULL.
	 */
	ENTRY_READ_STATE = 1 << 2,
	/* With ENTRY_READ_STATE: the row's read column is false (NULL is not unread). */
	ENTRY_UNREAD = 1 << 3,
	/*
	 * No user key: an 'unread_count' for every user of the source (TRUNCATE
	 * of the source table).  read() returns user_key NULL.
	 */
	ENTRY_USER_NULL = 1 << 4,
};

constexpr size_t ENTRY_ALIGN = 8;

/*
 * Bounds of an entry's strings, checked when the entry is queued (pending.cpp)
 * and again before it is copied into the ring (ring.cpp).  A source name is
 * what livenotify.source_tables' CHECK allows; a kind what send() allows.
 * The user key and the payload are bounded by livenotify.max_payload, itself
 * capped at a quarter of the ring (RingMaxPayload), so that the largest entry
 * is about half the ring.
 */
constexpr size_t ENTRY_MAX_SOURCE_LEN = 63;
constexpr size_t ENTRY_MAX_KIND_LEN = 63;

struct EntryHeader
{
	uint64_t seq; /* stamped at commit; 0 while pending */
	/*
	 * FullTransactionId of the committing top-level transaction, stamped at
	 * commit (see pending.cpp); 0 when it has none (send() alone assigns no
	 * xid).  A reader compares it with a pg_current_snapshot() to tell
	 * whether a count it fetched already saw this transaction.
	 */
	uint64_t xid;
	uint32_t len;  /* whole entry, header and padding included */
	uint32_t dbid; /* database Oid of the writer */
	uint32_t user_len;
	uint32_t payload_len;
	uint16_t source_len;
	uint16_t kind_len;
	uint16_t flags;
	uint16_t reserved;
};

static_assert(sizeof(EntryHeader) == 40, "entry header layout");
static_assert(sizeof(EntryHeader) % ENTRY_ALIGN == 0, "entry header keeps entries 8-aligned");

constexpr size_t
EntryAlign(size_t n)
{
	return (n + ENTRY_ALIGN - 1) & ~(ENTRY_ALIGN - 1);
}

constexpr size_t
EntrySize(size_t source_len, size_t kind_len, size_t user_len, size_t payload_len)
{
	return EntryAlign(sizeof(EntryHeader) + source_len + kind_len + user_len + payload_len);
}

inline const char *
EntrySource(const EntryHeader *e)
{
	return reinterpret_cast<const char *>(e + 1);
}

inline const char *
EntryKind(const EntryHeader *e)
{
	return EntrySource(e) + e->source_len;
}

inline const char *
EntryUser(const EntryHeader *e)
{
	return EntryKind(e) + e->kind_len;
}

inline const char *
EntryPayload(const EntryHeader *e)
{
	return EntryUser(e) + e->user_len;
}

/* Kinds made by the triggers; send() kinds are caller-chosen. */
constexpr const char KIND_NOTIFICATION[] = "notification";
constexpr const char KIND_UNREAD_COUNT[] = "unread_count";
/*
 * A transaction overflowed livenotify.max_pending (pending.cpp): its entries
 * of this source (no source: of every source) were dropped; no user key, no
 * payload.  Readers resync those users from the table.
 */
constexpr const char KIND_OVERFLOW[] = "overflow";

} /* namespace livenotify */
