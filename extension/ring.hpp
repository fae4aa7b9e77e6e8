/*-------------------------------------------------------------------------
 *
 * ring.hpp
 *	  The shared-memory ring of committed entries.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"
}

#include "entry.hpp"

namespace livenotify
{

/* Called from _PG_init while shared_preload_libraries is processed. */
void InitRing();

/* True when the ring exists (the library was preloaded). */
bool RingAvailable();

/* ERROR with a hint unless the library was preloaded. */
void RequireRing();

/*
 * For the triggers (capture_*, rules_changed): true when the library was not
 * preloaded, and the caller must then do nothing and return.  The app's
 * writes and DDL (and a dump's restore) must not fail because livenotify is
 * not loaded: the first call in a session emits one WARNING, every call is
 * counted (RingSkippedUnloaded, for livenotify.skipped_not_loaded()).
 */
bool RingSkipUnloaded();

/* How many trigger calls of this session RingSkipUnloaded() skipped. */
uint64 RingSkippedUnloaded();

/*
 * Append committed entries and wake the readers of this database; each copy
 * gets its seq and xid (the committing transaction's FullTransactionId as a
 * uint64, 0 for none).  Called from the COMMIT callback, after the commit
 * record: it never raises an ERROR and never waits for a reader (a full
 * ring overwrites).
 */
void RingAppendCommitted(EntryHeader *const *entries, int nentries, uint64 xid) noexcept;

/* Counters kept outside the lock. */
void RingCountFiltered();
void RingCountOversize();

/* Largest payload a single entry may carry (max_payload capped by ring). */
size_t RingMaxPayload();

/*
 * Most bytes one transaction's pending entries may take (max_pending capped
 * at a quarter of the ring, so a committed batch always fits well inside it).
 */
size_t RingMaxPending();

struct RingPosition
{
	uint64 epoch;
	uint64 last_seq;
};

RingPosition RingGetPosition();

struct RingReadResult
{
	uint64 epoch;
	uint64 lost;		  /* entries overwritten after 'after' */
	uint64 lost_last_seq; /* seq of the last of them */
	int nentries;
	EntryHeader **entries; /* palloc'd copies, seq order */
};

/*
 * Entries of this database with seq > after, at most max_entries; waits up
 * to timeout_ms on the latch when there are none.  May ERROR (bad position,
 * too many readers, cancel).  release_xmin: the caller checked that no
 * snapshot of the statement is used after the wait (functions.cpp,
 * StatementIsReadAlone); the backend then advertises no xmin while it
 * waits, unless another snapshot is registered.
 */
RingReadResult RingRead(uint64 after, int max_entries, int timeout_ms, bool release_xmin);

struct RingStats
{
	uint64 enqueued;
	uint64 filtered;
	uint64 lost;
	uint64 oversize;
	uint64 ring_bytes;
	uint64 ring_used_bytes;
	uint64 ring_entries;
	int readers;
	int waiting_readers;
	uint64 epoch;
	uint64 last_seq;
	uint64 oldest_seq;
};

RingStats RingGetStats();

} /* namespace livenotify */
