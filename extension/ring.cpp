/*-------------------------------------------------------------------------
 *
 * ring.cpp
 *	  The shared-memory ring of committed entries.
 *
 * Layout (allocated once at server start, sized by livenotify.ring_size):
 *
 *	  RingControl | reader slots | index[nslots] | data[data_size]
 *
 * Entries are appended to 'data' as a byte ring addressed by a monotonic
 * 64-bit byte position (position mod data_size is the offset, as in
 * shm_mq.c); an entry never straddles the end: the writer skips to the next
 * lap instead.  'index' maps seq mod nslots to the byte position of that
 * entry, so a reader finds "the first entry after seq N" in O(1).
 *
 * Entries [oldest_seq, next_seq) are intact.  To make room a writer advances
 * oldest_seq past the entries its bytes (or its index slot) would overwrite.
 * An overwritten entry that some active reader had not yet read is counted
 * as lost; the reader itself learns of the gap from its next read() (from
 * its position, whether or not it was counted).  A reader is active while it
 * waits in read() and for livenotify.reader_idle_timeout after read() last
 * looked at the ring: a session that read once and then idles keeps its slot
 * at an old position, and would otherwise make every later overwrite count
 * as lost forever.
 *
 * Locking protocol: one LWLock.
 *	- Writers (the COMMIT callback) hold it exclusively while copying their
 *	  batch and advancing next_seq/oldest_seq/head_pos, then release it and
 *	  set the latches of the waiting readers of their database (as async.c
 *	  signals listeners after releasing its lock).
 *	- Readers hold it shared while copying entries out, and update only their
 *	  own slot (pos, waiting) while holding it; writers read slots only under
 *	  the exclusive lock, so the lock orders every access and no separate
 *	  memory barrier is needed.
 *	- A reader resets its latch *before* looking for entries and sleeps only
 *	  if it found none, so a commit that lands between the look and the sleep
 *	  still wakes it (the latch stays set).
 *	- 'filtered' and 'oversize' are atomics, bumped from the trigger without
 *	  the lock.
 *	- A writer clears its in-flight slot (inflight.cpp) in the same exclusive
 *	  hold as its copy; a reader takes its read horizon before the shared
 *	  lock, so a transaction below the horizon had appended before the copy.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "guc.hpp"
#include "inflight.hpp"
#include "ring.hpp"

#include <cstring>

namespace livenotify
{

namespace
{

struct ReaderSlot
{
	bool in_use;
	bool waiting; /* sleeping in read(): wake on commit */
	int procno;
	Oid dbid;
	uint64 pos;			   /* entries <= pos have been read */
	TimestampTz active_at; /* when read() last looked at the ring */
};

/*
 * The first bytes of the ring's shared memory: the bytes "LvNtRing" and the
 * version of this layout.  Shared memory outlives nothing but a postmaster,
 * yet a library swapped under a running server (or, with EXEC_BACKEND, a
 * backend attaching to another build's segment) would read it with another
 * layout; the magic makes that a clear ERROR instead of a misread.  Bump
 * RING_LAYOUT_VERSION with every change to RingControl, ReaderSlot or
 * EntryHeader.
 */
constexpr uint64 RING_MAGIC = 0x676e6952744e764cULL; /* "LvNtRing" little-endian */
constexpr uint32 RING_LAYOUT_VERSION = 2;

struct RingControl
{
	uint64 magic;
	uint32 layout_version;
	LWLock *lock;
	uint64 epoch;
	uint64 data_size;
	uint64 nslots;
	int max_readers;

	/* protected by lock */
	uint64 next_seq;   /* seq of the next entry; first is 1 */
	uint64 oldest_seq; /* oldest intact entry; == next_seq if empty */
	uint64 head_pos;   /* byte position of the next entry */
	uint64 enqueued;
	uint64 lost;

	pg_atomic_uint64 filtered;
	pg_atomic_uint64 oversize;

	ReaderSlot readers[FLEXIBLE_ARRAY_MEMBER];
};

/*
 * The smallest entry (header + "unread_count" + a short key) is about 56
 * bytes, a trigger's (with its source name) rather 72; one index slot per
 * 64 data bytes means the index almost never limits the ring before the
 * bytes do.
 */
constexpr uint64 BYTES_PER_SLOT = 64;

/* Most bytes one read() copies out under the shared lock. */
constexpr size_t READ_MAX_BYTES = 8 * 1024 * 1024;

RingControl *ring = nullptr;
uint64 *ring_index = nullptr;
char *ring_data = nullptr;

/* This backend's reader slot, or -1. */
int my_reader_slot = -1;

/* Is the shared memory laid out as this library expects? */
inline bool
RingLayoutOk()
{
	return ring->magic == RING_MAGIC && ring->layout_version == RING_LAYOUT_VERSION;
}

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

uint64
DataSize()
{
	return static_cast<uint64>(guc_ring_size_kb) * 1024;
}

uint64
SlotCount()
{
	return DataSize() / BYTES_PER_SLOT;
}

Size
ControlSize()
{
	return MAXALIGN(
		add_size(offsetof(RingControl, readers), mul_size(sizeof(ReaderSlot), guc_max_readers)));
}

Size
RingShmemSize()
{
	Size size = ControlSize();

	size = add_size(size, MAXALIGN(mul_size(sizeof(uint64), SlotCount())));
	size = add_size(size, DataSize());
	return size;
}

void
RingShmemRequest()
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(RingShmemSize());
	RequestNamedLWLockTranche("livenotify", 1);
}

void
RingShmemStartup()
{
	bool found;
	char *base;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	base = static_cast<char *>(ShmemInitStruct("livenotify ring", RingShmemSize(), &found));
	ring = reinterpret_cast<RingControl *>(base);
	ring_index = reinterpret_cast<uint64 *>(base + ControlSize());
	ring_data = base + ControlSize() + MAXALIGN(sizeof(uint64) * SlotCount());
	if (found && !RingLayoutOk())
	{
		LWLockRelease(AddinShmemInitLock);
		ereport(FATAL,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("livenotify shared memory has another layout than this library"),
				 errdetail("Found magic 0x%016llx version %u, expected 0x%016llx version %u.",
						   static_cast<unsigned long long>(ring->magic), ring->layout_version,
						   static_cast<unsigned long long>(RING_MAGIC), RING_LAYOUT_VERSION),
				 errhint("Restart the server after installing a new livenotify library.")));
	}
	if (!found)
	{
		ring->magic = RING_MAGIC;
		ring->layout_version = RING_LAYOUT_VERSION;
		ring->lock = &(GetNamedLWLockTranche("livenotify"))->lock;
		/* A new epoch at every start, including a crash restart. */
		ring->epoch = static_cast<uint64>(GetCurrentTimestamp());
		ring->data_size = DataSize();
		ring->nslots = SlotCount();
		ring->max_readers = guc_max_readers;
		ring->next_seq = 1;
		ring->oldest_seq = 1;
		ring->head_pos = 0;
		ring->enqueued = 0;
		ring->lost = 0;
		pg_atomic_init_u64(&ring->filtered, 0);
		pg_atomic_init_u64(&ring->oversize, 0);

		/*
		 * Allocate every page of the ring now, in the postmaster.  Shared
		 * memory is allocated on first touch, and a page not yet allocated
		 * costs each writer a fault of its own; once it exists, a backend
		 * maps it 16 pages at a time (PrefaultAppend).  The ring is used
		 * whole within its first lap anyway.
		 */
		memset(ring_index, 0, sizeof(uint64) * ring->nslots);
		memset(ring_data, 0, ring->data_size);
		for (int i = 0; i < ring->max_readers; i++)
		{
			ring->readers[i].in_use = false;
			ring->readers[i].waiting = false;
			ring->readers[i].procno = -1;
			ring->readers[i].dbid = InvalidOid;
			ring->readers[i].pos = 0;
			ring->readers[i].active_at = 0;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

inline EntryHeader *
EntryAt(uint64 pos)
{
	return reinterpret_cast<EntryHeader *>(ring_data + pos % ring->data_size);
}

/* Lowest position any active reader has read up to (see above).  Lock held. */
uint64
SlowestReaderPos(TimestampTz now)
{
	uint64 min = PG_UINT64_MAX;
	TimestampTz idle_since = now - static_cast<int64>(guc_reader_idle_timeout_ms) * 1000;

	for (int i = 0; i < ring->max_readers; i++)
	{
		const ReaderSlot *r = &ring->readers[i];

		if (r->in_use && (r->waiting || r->active_at >= idle_since) && r->pos < min)
			min = r->pos;
	}
	return min;
}

/* Drop the oldest entry.  Exclusive lock held. */
inline void
EvictOldest(uint64 slowest_reader)
{
	if (ring->oldest_seq > slowest_reader)
		ring->lost++;
	ring->oldest_seq++;
}

/*
 * Is this entry's layout what PendingMakeEntry makes, within the bounds it
 * checks?  Only then may its len be trusted to copy it.  The bounds are
 * the ring's own (not the GUC livenotify.max_payload, which a transaction
 * may change after queueing): together they keep an entry under about
 * half the data area, so a copy can never run past it.
 */
bool
EntrySane(const EntryHeader *e)
{
	const uint64 max_string = ring->data_size / 4;

	return e->source_len <= ENTRY_MAX_SOURCE_LEN && e->kind_len >= 1 &&
		   e->kind_len <= ENTRY_MAX_KIND_LEN && e->user_len <= max_string &&
		   e->payload_len <= max_string &&
		   ((e->flags & ENTRY_SOURCE_NULL) == 0 || e->source_len == 0) &&
		   ((e->flags & ENTRY_USER_NULL) == 0 || e->user_len == 0) &&
		   ((e->flags & ENTRY_PAYLOAD_NULL) == 0 || e->payload_len == 0) &&
		   e->len == EntrySize(e->source_len, e->kind_len, e->user_len, e->payload_len);
}

/* Copy one entry in, stamping seq and xid.  Exclusive lock held; cannot fail. */
void
AppendOne(const EntryHeader *e, uint64 xid, uint64 slowest_reader)
{
	uint64 pos = ring->head_pos;
	uint64 end;

	/* Never straddle the end of the data area: skip to the next lap. */
	if (pos % ring->data_size + e->len > ring->data_size)
		pos += ring->data_size - pos % ring->data_size;
	end = pos + e->len;

	/* Make room: bytes first, then the index slot this seq will take. */
	while (ring->oldest_seq < ring->next_seq &&
		   ring_index[ring->oldest_seq % ring->nslots] + ring->data_size < end)
		EvictOldest(slowest_reader);
	if (ring->next_seq - ring->oldest_seq >= ring->nslots)
		EvictOldest(slowest_reader);

	memcpy(ring_data + pos % ring->data_size, e, e->len);
	EntryAt(pos)->seq = ring->next_seq;
	EntryAt(pos)->xid = xid;
	ring_index[ring->next_seq % ring->nslots] = pos;
	ring->next_seq++;
	ring->head_pos = end;
	ring->enqueued++;
}

/*
 * Map, in this backend, the pages the next append will write, before the
 * exclusive lock is taken.
 *
 * The ring is in the main shared memory segment, and fork() does not copy a
 * shared mapping's page tables: each backend maps a page on first touch.  A
 * write fault maps one 4 kB page; a read fault maps the (up to) 16 around it
 * ("fault-around"), writable on a shared writable mapping, so the copy that
 * follows takes no fault.  Appends of many backends interleave, so without
 * this a backend takes about one write fault per transaction, with the lock
 * held and every other committing backend queued behind it (measured in
 * bench/write-path-notes.md: 1.1 faults per transaction at 16 clients, and
 * 6x cheaper per page through fault-around).
 *
 * head_pos and next_seq are read without the lock: they are only a hint of
 * where this batch will go (a stale value maps pages used a moment later),
 * and the values read are discarded.  Huge pages make this nearly free.
 */
void
PrefaultAppend(uint64 nbytes, int nentries)
{
	const uint64 page = 4096;
	uint64 head = *reinterpret_cast<volatile uint64 *>(&ring->head_pos);
	uint64 seq = *reinterpret_cast<volatile uint64 *>(&ring->next_seq);
	/* Room for the skip to the next lap and for other backends' appends. */
	uint64 span = Min(2 * nbytes + 2 * page, ring->data_size);
	uint64 nslots = Min(static_cast<uint64>(nentries) + page / sizeof(uint64), ring->nslots);

	for (uint64 off = 0; off < span; off += page)
		(void) *reinterpret_cast<volatile char *>(ring_data + (head + off) % ring->data_size);
	for (uint64 i = 0; i < nslots; i += page / sizeof(uint64))
		(void) *reinterpret_cast<volatile uint64 *>(&ring_index[(seq + i) % ring->nslots]);
}

void
ReleaseReaderSlot(int code, Datum arg)
{
	if (my_reader_slot < 0 || ring == nullptr || !RingLayoutOk())
		return;
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	ring->readers[my_reader_slot].in_use = false;
	ring->readers[my_reader_slot].waiting = false;
	ring->readers[my_reader_slot].procno = -1;
	LWLockRelease(ring->lock);
	my_reader_slot = -1;
}

/*
 * Claim a reader slot for this backend on its first read().  The slot makes
 * overwritten-but-unread entries count as lost, and lets writers wake us.
 */
void
RegisterReader(uint64 after)
{
	static bool exit_callback_registered = false;

	if (my_reader_slot >= 0)
		return;

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ring->max_readers; i++)
	{
		if (!ring->readers[i].in_use)
		{
			ring->readers[i].in_use = true;
			ring->readers[i].waiting = false;
			ring->readers[i].procno = MyProc->pgprocno;
			ring->readers[i].dbid = MyDatabaseId;
			ring->readers[i].pos = after;
			ring->readers[i].active_at = GetCurrentTimestamp();
			my_reader_slot = i;
			break;
		}
	}
	LWLockRelease(ring->lock);

	if (my_reader_slot < 0)
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						errmsg("too many livenotify readers"),
						errdetail("All %d reader slots are in use.", guc_max_readers),
						errhint("Increase livenotify.max_readers and restart the server.")));

	if (!exit_callback_registered)
	{
		before_shmem_exit(ReleaseReaderSlot, 0);
		exit_callback_registered = true;
	}
}

} /* namespace */

void
InitRing()
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RingShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RingShmemStartup;
}

bool
RingAvailable()
{
	return ring != nullptr;
}

void
RequireRing()
{
	if (ring == nullptr)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("livenotify must be loaded via shared_preload_libraries"),
						errhint("Add 'livenotify' to shared_preload_libraries in postgresql.conf "
								"and restart the server.")));
	/* Every SQL entry point comes here first: one compare of memory already mapped. */
	if (!RingLayoutOk())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("livenotify shared memory has another layout than this library"),
				 errdetail("Found magic 0x%016llx version %u, expected 0x%016llx version %u.",
						   static_cast<unsigned long long>(ring->magic), ring->layout_version,
						   static_cast<unsigned long long>(RING_MAGIC), RING_LAYOUT_VERSION),
				 errhint("Restart the server after installing a new livenotify library.")));
}

namespace
{

/* Backend-local: nothing is shared when the library is not preloaded. */
uint64 skipped_unloaded = 0;

} /* namespace */

bool
RingSkipUnloaded()
{
	if (ring != nullptr)
	{
		/* Loaded: the same layout check as every other entry point. */
		RequireRing();
		return false;
	}
	if (skipped_unloaded++ == 0)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("livenotify is not loaded: changes to registered tables are not queued"),
				 errdetail("The statement goes on; livenotify warns once per session and counts "
						   "the skipped trigger calls in livenotify.skipped_not_loaded()."),
				 errhint("Add 'livenotify' to shared_preload_libraries in postgresql.conf and "
						 "restart the server.")));
	return true;
}

uint64
RingSkippedUnloaded()
{
	return skipped_unloaded;
}

size_t
RingMaxPayload()
{
	size_t cap = ring->data_size / 4;

	return Min(static_cast<size_t>(guc_max_payload), cap);
}

size_t
RingMaxPending()
{
	return Min(static_cast<size_t>(guc_max_pending), static_cast<size_t>(ring->data_size / 4));
}

void
RingCountFiltered()
{
	pg_atomic_fetch_add_u64(&ring->filtered, 1);
}

void
RingCountOversize()
{
	pg_atomic_fetch_add_u64(&ring->oversize, 1);
}

void
RingAppendCommitted(EntryHeader *const *entries, int nentries, uint64 xid) noexcept
{
	int wake[1024];
	int nwake = 0;
	uint64 slowest;
	uint64 nbytes = 0;
	TimestampTz now;

	/* After commit: no ERROR, so a foreign layout is simply not written to. */
	if (nentries == 0 || ring == nullptr || !RingLayoutOk())
		return;

	/*
	 * Nothing after commit trusts a size it did not check: an entry that
	 * fails EntrySane (PendingMakeEntry refuses to make one, so none should)
	 * is skipped and counted as oversize, never copied.
	 */
	for (int i = 0; i < nentries; i++)
		if (EntrySane(entries[i]))
			nbytes += entries[i]->len;
	PrefaultAppend(nbytes, nentries);
	/* A clock read; before the lock, and it cannot fail. */
	now = GetCurrentTimestamp();

	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	slowest = SlowestReaderPos(now);
	for (int i = 0; i < nentries; i++)
	{
		if (EntrySane(entries[i]))
			AppendOne(entries[i], xid, slowest);
		else
			pg_atomic_fetch_add_u64(&ring->oversize, 1);
	}
	/* In the same lock hold as the copy: a reader sees the entries or the slot (inflight.cpp). */
	InflightClear();
	for (int i = 0; i < ring->max_readers && nwake < 1024; i++)
	{
		ReaderSlot *r = &ring->readers[i];

		if (r->in_use && r->waiting && r->dbid == MyDatabaseId)
			wake[nwake++] = r->procno;
	}
	LWLockRelease(ring->lock);

	/* Signal after releasing the lock, so the woken reader need not wait. */
	for (int i = 0; i < nwake; i++)
		SetLatch(&ProcGlobal->allProcs[wake[i]].procLatch);
}

RingPosition
RingGetPosition()
{
	RingPosition p;

	RequireRing();
	LWLockAcquire(ring->lock, LW_SHARED);
	p.epoch = ring->epoch;
	p.last_seq = ring->next_seq - 1;
	LWLockRelease(ring->lock);
	return p;
}

RingReadResult
RingRead(uint64 after, int max_entries, int timeout_ms, bool release_xmin)
{
	RingReadResult res;
	TimestampTz start = GetCurrentTimestamp();
	uint64 cursor = after;
	size_t copied = 0;

	RequireRing();
	RegisterReader(after);

	res.epoch = ring->epoch;
	res.lost = 0;
	res.lost_last_seq = 0;
	res.nentries = 0;
	res.entries = static_cast<EntryHeader **>(palloc(sizeof(EntryHeader *) * max_entries));
	InflightSetLastHorizon(ReadHorizon{false, 0, 0});

	for (;;)
	{
		ReaderSlot *me = &ring->readers[my_reader_slot];
		uint64 last_seq;
		TimestampTz now;
		/* Taken before the lock: see inflight.cpp for why that order is the safe one. */
		ReadHorizon horizon;

		/*
		 * shm_mq.c's order: reset the latch, then check for interrupts.  A
		 * cancel or terminate that arrived before the reset (even before this
		 * call) set the latch and the flag; the reset clears the latch, so
		 * the flag must be seen here or WaitLatch would sleep the whole
		 * timeout with it pending.  One that arrives after the reset sets the
		 * latch again and ends the WaitLatch below.  Our slot is not marked
		 * waiting here, so an ERROR leaves nothing stale behind.
		 */
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		horizon = InflightHorizonStart();

		now = GetCurrentTimestamp();
		LWLockAcquire(ring->lock, LW_SHARED);
		last_seq = ring->next_seq - 1;
		if (cursor > last_seq)
		{
			LWLockRelease(ring->lock);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("position %llu is past the end of the livenotify queue (last is %llu)",
							static_cast<unsigned long long>(cursor),
							static_cast<unsigned long long>(last_seq)),
					 errhint("The server restarted since this position was read (epoch is now "
							 "%llu): resync, then read from livenotify.position().",
							 static_cast<unsigned long long>(ring->epoch))));
		}
		if (cursor + 1 < ring->oldest_seq)
		{
			res.lost = ring->oldest_seq - 1 - cursor;
			res.lost_last_seq = ring->oldest_seq - 1;
			cursor = ring->oldest_seq - 1;
		}
		/*
		 * Bounded by count and by bytes: writers wait for this shared lock,
		 * so one call never copies more than READ_MAX_BYTES under it.
		 */
		while (cursor < last_seq && res.nentries < max_entries && copied < READ_MAX_BYTES)
		{
			uint64 seq = cursor + 1;
			const EntryHeader *e = EntryAt(ring_index[seq % ring->nslots]);

			Assert(e->seq == seq);
			if (e->dbid == MyDatabaseId)
			{
				/* No ERROR while holding the lock: stop short on out-of-memory. */
				EntryHeader *copy = static_cast<EntryHeader *>(
					MemoryContextAllocExtended(CurrentMemoryContext, e->len, MCXT_ALLOC_NO_OOM));

				if (copy == nullptr)
					break;
				memcpy(copy, e, e->len);
				copied += e->len;
				res.entries[res.nentries++] = copy;
			}
			cursor = seq;
		}
		me->pos = cursor;
		me->active_at = now;
		me->waiting = (res.nentries == 0 && res.lost == 0);
		LWLockRelease(ring->lock);

		/* A horizon only speaks for a copy that reached the end of the ring. */
		if (cursor == last_seq)
			InflightHorizonFinish(&horizon);
		else
			horizon.valid = false;
		InflightSetLastHorizon(horizon);

		if (!me->waiting)
			break;

		{
			long elapsed = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());

			if (elapsed >= timeout_ms)
				break;

			/*
			 * Do not hold back vacuum while asleep (see release_xmin).  The
			 * catalog snapshot goes first; then the only snapshot left
			 * registered must be the statement's own, which nothing reads a
			 * table with after the wait.  The store is what snapmgr.c's
			 * SnapshotResetXmin() does; the next snapshot taken (a catalog
			 * lookup) advertises a fresh xmin (GetSnapshotData()).
			 */
			if (release_xmin)
			{
				InvalidateCatalogSnapshot();
				if (ThereAreNoPriorRegisteredSnapshots())
					MyProc->xmin = InvalidTransactionId;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout_ms - elapsed, PG_WAIT_EXTENSION);
		}

		/*
		 * Not waiting while we handle interrupts (at the top of the loop): a
		 * cancel leaves no stale "waiting" behind.  A commit from now until
		 * the next look is found by that look (the latch is reset before it).
		 */
		LWLockAcquire(ring->lock, LW_SHARED);
		me->waiting = false;
		LWLockRelease(ring->lock);
	}

	LWLockAcquire(ring->lock, LW_SHARED);
	ring->readers[my_reader_slot].waiting = false;
	LWLockRelease(ring->lock);
	return res;
}

RingStats
RingGetStats()
{
	RingStats s;

	RequireRing();
	LWLockAcquire(ring->lock, LW_SHARED);
	s.enqueued = ring->enqueued;
	s.lost = ring->lost;
	s.ring_bytes = ring->data_size;
	s.ring_entries = ring->next_seq - ring->oldest_seq;
	s.ring_used_bytes =
		s.ring_entries == 0 ? 0 : ring->head_pos - ring_index[ring->oldest_seq % ring->nslots];
	s.readers = 0;
	s.waiting_readers = 0;
	for (int i = 0; i < ring->max_readers; i++)
	{
		if (ring->readers[i].in_use)
		{
			s.readers++;
			if (ring->readers[i].waiting)
				s.waiting_readers++;
		}
	}
	s.epoch = ring->epoch;
	s.last_seq = ring->next_seq - 1;
	s.oldest_seq = ring->oldest_seq;
	LWLockRelease(ring->lock);
	s.filtered = pg_atomic_read_u64(&ring->filtered);
	s.oversize = pg_atomic_read_u64(&ring->oversize);
	return s;
}

} /* namespace livenotify */
