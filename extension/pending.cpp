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
	int level; /* transaction nesting level */
	int start; /* first entry index queued at that level */
};

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
	p->nmarks++;
}

void
AtSubAbort(int level)
{
	if (pending == nullptr || pending->nmarks == 0)
		return;
	if (pending->marks[pending->nmarks - 1].level == level)
	{
		pending->nentries = pending->marks[pending->nmarks - 1].start;
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

void
XactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending != nullptr && pending->nentries > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has queued livenotify entries"),
						 errdetail_plural("%d entry is pending; entries are published at "
										  "COMMIT and cannot survive a prepared transaction.",
										  "%d entries are pending; entries are published at "
										  "COMMIT and cannot survive a prepared transaction.",
										  pending->nentries, pending->nentries),
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
			if (pending != nullptr)
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
	size_t size = EntrySize(source ? source_len : 0, kind_len, user ? user_len : 0,
							payload ? payload_len : 0);
	EntryHeader *e = static_cast<EntryHeader *>(MemoryContextAlloc(CurTransactionContext, size));
	char *p = reinterpret_cast<char *>(e + 1);

	Assert(source_len <= PG_UINT16_MAX && kind_len <= PG_UINT16_MAX);
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

void
PendingAdd(EntryHeader *entry)
{
	PendingState *p = GetPending();

	PushMarkIfNeeded(p);
	if (p->nentries == p->capacity)
	{
		p->capacity *= 2;
		p->entries = static_cast<EntryHeader **>(
			repalloc_huge(p->entries, sizeof(EntryHeader *) * p->capacity));
	}
	p->entries[p->nentries++] = entry;
}

void
PendingAddUnreadCount(const char *source, size_t source_len, const char *user, size_t user_len)
{
	PendingState *p = GetPending();
	uint64 h;
	UnreadKey *slot;
	bool found;

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

	/*
	 * The remembered index may be stale (its savepoint rolled back, or a
	 * hash collision): trust it only if that entry is still queued and is
	 * the same (source, user).
	 */
	if (found && slot->index < p->nentries &&
		SameUnread(p->entries[slot->index], source, source_len, user, user_len))
		return;

	slot->index = p->nentries;
	PendingAdd(PendingMakeEntry(source, source_len, KIND_UNREAD_COUNT,
								sizeof(KIND_UNREAD_COUNT) - 1, user, user_len, nullptr, 0));
}

} /* namespace livenotify */
