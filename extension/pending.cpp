/*-------------------------------------------------------------------------
 *
 * pending.cpp
 *	  Entries queued by the current transaction, and the transaction
 *	  callbacks that publish them at COMMIT or drop them on (sub)abort.
 *
 * Model: async.c's pending notifications.  Differences:
 *
 *	- Each entry is allocated in CurTransactionContext of the subtransaction
 *	  that queued it, so a rolled-back savepoint frees its entries' memory
 *	  with its context.  The array of pointers lives in TopTransactionContext.
 *
 *	- Instead of one list per nesting level, one array plus a stack of marks
 *	  (nesting level, first index queued at that level).  A mark is pushed
 *	  lazily by the first entry queued at a deeper level.  Subabort at level
 *	  L truncates the array to L's mark; subcommit hands L's mark to the
 *	  parent (or drops it when the parent has its own).  Both are O(1), so a
 *	  PL/pgSQL loop with an EXCEPTION block per row stays linear.
 *
 *	- PRE_COMMIT has nothing left to do that can fail: entries are built in
 *	  their final layout when queued.  COMMIT copies them into the ring; that
 *	  runs after the commit record, so it must not (and cannot) ERROR.
 *
 *	- Bounded memory (livenotify.max_pending, RingMaxPending).  The bytes of
 *	  the queued entries, the pointer array and the unread_count dedup hash
 *	  are counted; a rolled-back savepoint gives its entries' bytes back.  An
 *	  entry that would take the transaction past the bound *overflows* it:
 *	  every entry queued so far is freed, nothing more is queued, and instead
 *	  the transaction publishes one 'overflow' entry (no user, no payload) per
 *	  source it touched, or a single one with no source (every source) when
 *	  it touched more than MAX_OVERFLOW_SOURCES or sent an ephemeral message.
 *	  A reader resyncs those sources' users from the table.  The overflow is
 *	  never undone, not even by the rollback of the savepoint in which it
 *	  happened: the parent's entries are gone, so the marker must stay (a
 *	  spurious resync, never a lost notification).  A bulk load thus costs
 *	  at most max_pending bytes here and a few-entry copy under the ring's
 *	  lock at commit.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
}

#include "inflight.hpp"
#include "pending.hpp"
#include "ring.hpp"

#include <cstring>

namespace livenotify
{

namespace
{

struct Mark
{
	int level;			/* transaction nesting level */
	int start;			/* first entry index queued at that level */
	size_t start_bytes; /* entry_bytes before that entry */
};

/* Distinct sources named by overflow markers before one marker covers every source. */
constexpr int MAX_OVERFLOW_SOURCES = 8;

/*
 * What one dedup hash entry costs, counted against max_pending: dynahash's
 * HASHELEMENT (16 bytes) and our 16-byte entry, plus its share of the
 * bucket array and of the element batches (utils/hash/dynahash.c).
 */
constexpr size_t UNREAD_KEY_COST = 64;

/* Dedup of unread_count entries: hash of (source, user or none) -> entry index. */
struct UnreadKey
{
	uint64 hash;
	int index;
};

struct PendingState
{
	EntryHeader **entries;
	int nentries;
	int capacity;
	Mark *marks;
	int nmarks;
	int marks_capacity;
	HTAB *unread;
	long nunread;		/* entries in 'unread' */
	size_t entry_bytes; /* sum of len of entries[0 .. nentries) */

	/*
	 * Overflowed: entries is empty for good and the markers below are what
	 * COMMIT publishes.  They live in TopTransactionContext, outside the
	 * marks, so no savepoint rollback removes them.
	 */
	bool overflowed;
	bool overflow_all; /* the single marker covers every source */
	EntryHeader *markers[MAX_OVERFLOW_SOURCES];
	int nmarkers;
};

/* NULL outside a transaction that queued something. */
PendingState *pending = nullptr;

PendingState *
GetPending()
{
	if (pending == nullptr)
	{
		pending = static_cast<PendingState *>(
			MemoryContextAllocZero(TopTransactionContext, sizeof(PendingState)));
		pending->capacity = 16;
		pending->entries = static_cast<EntryHeader **>(
			MemoryContextAlloc(TopTransactionContext, sizeof(EntryHeader *) * pending->capacity));
		pending->marks_capacity = 8;
		pending->marks = static_cast<Mark *>(
			MemoryContextAlloc(TopTransactionContext, sizeof(Mark) * pending->marks_capacity));
	}
	return pending;
}

void
PushMarkIfNeeded(PendingState *p)
{
	int level = GetCurrentTransactionNestLevel();

	/* Top-level entries need no mark: only a whole abort drops them. */
	if (level <= 1)
		return;
	if (p->nmarks > 0 && p->marks[p->nmarks - 1].level >= level)
		return;
	if (p->nmarks == p->marks_capacity)
	{
		p->marks_capacity *= 2;
		p->marks = static_cast<Mark *>(repalloc(p->marks, sizeof(Mark) * p->marks_capacity));
	}
	p->marks[p->nmarks].level = level;
	p->marks[p->nmarks].start = p->nentries;
	p->marks[p->nmarks].start_bytes = p->entry_bytes;
	p->nmarks++;
}

void
AtSubAbort(int level)
{
	if (pending == nullptr || pending->nmarks == 0)
		return;
	/* The entries' memory goes with the subtransaction's context. */
	if (pending->marks[pending->nmarks - 1].level == level)
	{
		pending->nentries = pending->marks[pending->nmarks - 1].start;
		pending->entry_bytes = pending->marks[pending->nmarks - 1].start_bytes;
		pending->nmarks--;
	}
}

void
AtSubCommit(int level)
{
	Mark *top;

	if (pending == nullptr || pending->nmarks == 0)
		return;
	top = &pending->marks[pending->nmarks - 1];
	if (top->level != level)
		return;
	/* The parent already has a mark at or before ours: ours merges into it. */
	if (level - 1 <= 1 ||
		(pending->nmarks > 1 && pending->marks[pending->nmarks - 2].level == level - 1))
		pending->nmarks--;
	else
		top->level = level - 1;
}

/* Entries COMMIT would publish (the markers once overflowed). */
int
PendingCount()
{
	return pending->overflowed ? pending->nmarkers : pending->nentries;
}

void
XactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending != nullptr && (pending->nentries > 0 || pending->overflowed))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has queued livenotify entries"),
						 errdetail_plural("%d entry is pending; entries are published at "
										  "COMMIT and cannot survive a prepared transaction.",
										  "%d entries are pending; entries are published at "
										  "COMMIT and cannot survive a prepared transaction.",
										  PendingCount(), PendingCount()),
						 errhint("Change registered tables in an ordinary transaction, or set "
								 "livenotify.enabled = off before changing them.")));
			break;

		case XACT_EVENT_COMMIT:
			/*
			 * After the commit record: too late to abort, so nothing here may
			 * fail.  TopTransactionContext (and the entries) are still valid;
			 * they are released right after the callbacks.
			 *
			 * The xid is read here, not at PRE_COMMIT: in PG 15's
			 * CommitTransaction() (xact.c) PreCommit_Notify() and the ON
			 * COMMIT actions run after the PRE_COMMIT callbacks and may still
			 * assign one, and XactTopFullTransactionId is reset only at the
			 * very end, after AtCommit_Memory(), long after these COMMIT
			 * callbacks.  So this is exactly the xid of the commit record
			 * (InvalidFullTransactionId, 0, if there was none).
			 * GetTopFullTransactionIdIfAny() only reads that variable.
			 */
			if (pending != nullptr && pending->overflowed)
				RingAppendCommitted(pending->markers, pending->nmarkers,
									U64FromFullTransactionId(GetTopFullTransactionIdIfAny()));
			else if (pending != nullptr)
				RingAppendCommitted(pending->entries, pending->nentries,
									U64FromFullTransactionId(GetTopFullTransactionIdIfAny()));
			pending = nullptr;
			/* The append cleared the in-flight slot; this covers a ring that is absent. */
			InflightClear();
			break;

		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* Memory goes with TopTransactionContext. */
			pending = nullptr;
			InflightClear();
			break;

		case XACT_EVENT_PRE_COMMIT:
			/*
			 * In flight from here until the append (inflight.cpp): this runs
			 * before RecordTransactionCommit() and ProcArrayEndTransaction()
			 * make the transaction visible.  A transaction with rows has its
			 * xid by now; one without (send() alone) registers nothing.
			 */
			if (pending != nullptr && pending->nentries > 0)
				InflightRegister(U64FromFullTransactionId(GetTopFullTransactionIdIfAny()));
			break;

		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
	}
}

void
SubXactCallback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
				void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			AtSubAbort(GetCurrentTransactionNestLevel());
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			AtSubCommit(GetCurrentTransactionNestLevel());
			break;
		case SUBXACT_EVENT_START_SUB:
		case SUBXACT_EVENT_PRE_COMMIT_SUB:
			break;
	}
}

bool
SameUnread(const EntryHeader *e, const char *source, size_t source_len, const char *user,
		   size_t user_len)
{
	if (e->kind_len != sizeof(KIND_UNREAD_COUNT) - 1 ||
		memcmp(EntryKind(e), KIND_UNREAD_COUNT, e->kind_len) != 0 || e->source_len != source_len ||
		memcmp(EntrySource(e), source, source_len) != 0)
		return false;
	if (user == nullptr)
		return (e->flags & ENTRY_USER_NULL) != 0;
	return (e->flags & ENTRY_USER_NULL) == 0 && e->user_len == user_len &&
		   memcmp(EntryUser(e), user, user_len) == 0;
}

/* The pattern of livenotify.source_tables' CHECK: [A-Za-z_][A-Za-z0-9_.-]{0,62}. */
bool
ValidSourceName(const char *source, size_t len)
{
	if (len == 0 || len > ENTRY_MAX_SOURCE_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char c = source[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
				  (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'));

		if (!ok)
			return false;
	}
	return true;
}

/*
 * The trust boundary (docs/architecture.md): every string of an entry is
 * bounded here, when the entry is queued, where an ERROR still aborts the
 * transaction cleanly (as async.c's Async_Notify() checks a payload's length
 * when it is queued).  Callers that must not fail (the capture triggers on
 * the app's INSERT) check the user key and the payload first and skip the
 * row with a WARNING; what reaches this ERROR is a bad argument (a trigger
 * attached by hand, an internal function called directly).
 */
void
CheckEntryStrings(const char *source, size_t source_len, size_t kind_len, const char *user,
				  size_t user_len, const char *payload, size_t payload_len)
{
	size_t max = RingMaxPayload();

	if (source != nullptr && !ValidSourceName(source, source_len))
	{
		/* Not echoed when too long: the message would be as big as the argument. */
		if (source_len > ENTRY_MAX_SOURCE_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("livenotify source name of %zu bytes is too long", source_len),
					 errdetail("A source name has 1 to %zu characters.", ENTRY_MAX_SOURCE_LEN),
					 errhint("Install the triggers with livenotify.register().")));
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid livenotify source name \"%.*s\"",
							   static_cast<int>(source_len), source),
						errdetail("A source name uses only letters, digits, _ . - (not first)."),
						errhint("Install the triggers with livenotify.register().")));
	}
	if (kind_len == 0 || kind_len > ENTRY_MAX_KIND_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("livenotify message kind of %zu bytes is not valid", kind_len),
						errdetail("A kind has 1 to %zu characters.", ENTRY_MAX_KIND_LEN)));
	if (user != nullptr && user_len > max)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("livenotify user key of %zu bytes exceeds the limit of %zu bytes",
							   user_len, max),
						errdetail("The limit is livenotify.max_payload, capped at a quarter of "
								  "livenotify.ring_size.")));
	if (payload != nullptr && payload_len > max)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("livenotify payload of %zu bytes exceeds the limit of %zu bytes",
							   payload_len, max),
						errdetail("The limit is livenotify.max_payload, capped at a quarter of "
								  "livenotify.ring_size.")));
}

/* PendingMakeEntry, allocated in cxt. */
EntryHeader *
MakeEntryIn(MemoryContext cxt, const char *source, size_t source_len, const char *kind,
			size_t kind_len, const char *user, size_t user_len, const char *payload,
			size_t payload_len, uint16 flags)
{
	size_t size;
	EntryHeader *e;
	char *p;

	/* Before any size is computed or narrowed to the header's fields. */
	CheckEntryStrings(source, source_len, kind_len, user, user_len, payload, payload_len);
	size = EntrySize(source ? source_len : 0, kind_len, user ? user_len : 0,
					 payload ? payload_len : 0);
	e = static_cast<EntryHeader *>(MemoryContextAlloc(cxt, size));
	p = reinterpret_cast<char *>(e + 1);

	StaticAssertStmt(ENTRY_MAX_SOURCE_LEN <= PG_UINT16_MAX && ENTRY_MAX_KIND_LEN <= PG_UINT16_MAX,
					 "source and kind lengths fit the header");
	memset(e, 0, sizeof(EntryHeader));
	e->len = static_cast<uint32>(size);
	e->dbid = MyDatabaseId;
	e->source_len = static_cast<uint16>(source ? source_len : 0);
	e->kind_len = static_cast<uint16>(kind_len);
	e->user_len = static_cast<uint32>(user ? user_len : 0);
	e->payload_len = static_cast<uint32>(payload ? payload_len : 0);
	e->flags = flags | (source ? 0 : ENTRY_SOURCE_NULL) | (user ? 0 : ENTRY_USER_NULL) |
			   (payload ? 0 : ENTRY_PAYLOAD_NULL);
	if (source)
		memcpy(p, source, source_len), p += source_len;
	memcpy(p, kind, kind_len), p += kind_len;
	if (user)
		memcpy(p, user, user_len), p += user_len;
	if (payload)
		memcpy(p, payload, payload_len), p += payload_len;
	/* Zero the padding: the ring's bytes are copied verbatim to readers. */
	memset(p, 0, reinterpret_cast<char *>(e) + size - p);
	return e;
}

EntryHeader *
MakeMarker(const char *source, size_t source_len)
{
	return MakeEntryIn(TopTransactionContext, source, source_len, KIND_OVERFLOW,
					   sizeof(KIND_OVERFLOW) - 1, nullptr, 0, nullptr, 0, 0);
}

/*
 * An overflowed transaction touched this source (NULL: something that is
 * not a source's, a send()): make sure a marker covers it.
 */
void
OverflowNote(PendingState *p, const char *source, size_t source_len)
{
	if (p->overflow_all)
		return;
	if (source != nullptr)
	{
		for (int i = 0; i < p->nmarkers; i++)
		{
			const EntryHeader *m = p->markers[i];

			if (m->source_len == source_len && memcmp(EntrySource(m), source, source_len) == 0)
				return;
		}
		if (p->nmarkers < MAX_OVERFLOW_SOURCES)
		{
			p->markers[p->nmarkers++] = MakeMarker(source, source_len);
			return;
		}
	}
	/* Too many sources, or a user we cannot tie to one: one marker for all. */
	for (int i = 0; i < p->nmarkers; i++)
		pfree(p->markers[i]);
	p->markers[0] = MakeMarker(nullptr, 0);
	p->nmarkers = 1;
	p->overflow_all = true;
}

void
OverflowNoteEntry(PendingState *p, const EntryHeader *e)
{
	if (e->flags & ENTRY_SOURCE_NULL)
		OverflowNote(p, nullptr, 0);
	else
		OverflowNote(p, EntrySource(e), e->source_len);
}

/*
 * Collapse the transaction's entries into markers: free them (each chunk
 * knows its context, whichever subtransaction queued it), and the dedup
 * hash; from now on nothing is queued.
 */
void
Overflow(PendingState *p)
{
	Assert(!p->overflowed);
	p->overflowed = true;
	for (int i = 0; i < p->nentries; i++)
	{
		OverflowNoteEntry(p, p->entries[i]);
		pfree(p->entries[i]);
	}
	p->nentries = 0;
	p->entry_bytes = 0;
	/* No savepoint can bring entries back: its mark means nothing now. */
	p->nmarks = 0;
	if (p->unread != nullptr)
	{
		hash_destroy(p->unread);
		p->unread = nullptr;
		p->nunread = 0;
	}
}

/* The bytes this transaction's pending state would take with one more entry of len. */
size_t
PendingBytesWith(const PendingState *p, size_t len)
{
	size_t capacity = p->nentries == p->capacity ? 2 * static_cast<size_t>(p->capacity)
												 : static_cast<size_t>(p->capacity);

	return p->entry_bytes + len + capacity * sizeof(EntryHeader *) +
		   static_cast<size_t>(p->nunread) * UNREAD_KEY_COST;
}

} /* namespace */

void
InitPending()
{
	RegisterXactCallback(XactCallback, nullptr);
	RegisterSubXactCallback(SubXactCallback, nullptr);
}

EntryHeader *
PendingMakeEntry(const char *source, size_t source_len, const char *kind, size_t kind_len,
				 const char *user, size_t user_len, const char *payload, size_t payload_len,
				 uint16 flags)
{
	return MakeEntryIn(CurTransactionContext, source, source_len, kind, kind_len, user, user_len,
					   payload, payload_len, flags);
}

void
PendingAdd(EntryHeader *entry)
{
	PendingState *p = GetPending();

	if (!p->overflowed && PendingBytesWith(p, entry->len) > RingMaxPending())
		Overflow(p);
	if (p->overflowed)
	{
		OverflowNoteEntry(p, entry);
		pfree(entry);
		return;
	}

	PushMarkIfNeeded(p);
	if (p->nentries == p->capacity)
	{
		p->capacity *= 2;
		p->entries = static_cast<EntryHeader **>(
			repalloc_huge(p->entries, sizeof(EntryHeader *) * p->capacity));
	}
	p->entries[p->nentries++] = entry;
	p->entry_bytes += entry->len;
}

bool
PendingSkipOverflowed(const char *source)
{
	if (pending == nullptr || !pending->overflowed)
		return false;
	OverflowNote(pending, source, strlen(source));
	return true;
}

void
PendingAddUnreadCount(const char *source, size_t source_len, const char *user, size_t user_len)
{
	PendingState *p = GetPending();
	uint64 h;
	UnreadKey *slot;
	bool found;

	/* Before hashing a string of any length. */
	CheckEntryStrings(source, source_len, sizeof(KIND_UNREAD_COUNT) - 1, user, user_len, nullptr,
					  0);
	if (p->overflowed)
	{
		OverflowNote(p, source, source_len);
		return;
	}
	if (p->unread == nullptr)
	{
		HASHCTL ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(UnreadKey);
		ctl.hcxt = TopTransactionContext;
		p->unread = hash_create("livenotify pending unread counts", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/* A user-less entry hashes apart from the users'; SameUnread settles any collision. */
	h = hash_bytes_extended(reinterpret_cast<const unsigned char *>(source), source_len, 0);
	if (user != nullptr)
		h = hash_bytes_extended(reinterpret_cast<const unsigned char *>(user), user_len, h);
	else
		h = ~h;
	slot = static_cast<UnreadKey *>(hash_search(p->unread, &h, HASH_ENTER, &found));
	if (!found)
		p->nunread++; /* counted by the PendingAdd below */

	/*
	 * The remembered index may be stale (its savepoint rolled back, or a
	 * hash collision): trust it only if that entry is still queued and is
	 * the same (source, user).
	 */
	if (found && slot->index < p->nentries &&
		SameUnread(p->entries[slot->index], source, source_len, user, user_len))
		return;

	/* PendingAdd may overflow (and destroy the hash): slot is not used after it. */
	slot->index = p->nentries;
	PendingAdd(PendingMakeEntry(source, source_len, KIND_UNREAD_COUNT,
								sizeof(KIND_UNREAD_COUNT) - 1, user, user_len, nullptr, 0));
}

} /* namespace livenotify */
