/*-------------------------------------------------------------------------
 *
 * inflight.cpp
 *	  Transactions that have committed (or are about to) but whose entries
 *	  are not in the ring yet, and the read horizon built from them.
 *
 * Why.  PG 15's CommitTransaction() (xact.c) makes a transaction visible in
 * ProcArrayEndTransaction() and only then calls the XACT_EVENT_COMMIT
 * callbacks, where our entries are appended.  Nothing holds a lock across
 * both, so a reader can see a transaction's rows in a snapshot before its
 * entries are in the ring, and the ring's seq order is not commit order.
 * A reader that wants to say "every row committed before X was read" needs
 * to know which committed transactions have not appended yet.
 *
 * How.  One slot per PGPROC (indexed by pgprocno, sized like ProcGlobal's
 * array: MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts) holds the
 * top-level FullTransactionId of this backend's transaction from its
 * XACT_EVENT_PRE_COMMIT (before RecordTransactionCommit and
 * ProcArrayEndTransaction) until RingAppendCommitted has copied its entries,
 * cleared under the ring's exclusive lock in the same hold as the copy, or
 * until it aborts.
 *
 * The horizon (InflightHorizonStart) is
 *	  xmin = min(GetOldestActiveTransactionId(), every registered slot)
 * taken before the reader takes the ring lock.  Claim: every transaction
 * with a top-level xid below xmin that committed with entries had appended
 * them before the horizon was taken, so a copy that then reads to the end
 * of the ring has them all.  Proof sketch: such a transaction T is not in
 * the ProcArray (GetOldestActiveTransactionId() reads nextXid under
 * XidGenLock before scanning ProcGlobal->xids under ProcArrayLock, so no
 * running xid below its answer escapes it), so T's ProcArrayEndTransaction
 * happened before our ProcArrayLock acquisition; T registered before that,
 * so its slot write is visible to us (the LWLock acquire/release pairs
 * order it); a clear slot then means T's append, made under the exclusive
 * ring lock, is done.
 *
 * Rows are what catch-up compares, and a row's xmin is the xid of the
 * (sub)transaction that inserted it: a subtransaction's xid is larger than
 * its parent's (AssignTransactionId assigns the parent first), so a row
 * with xmin below the horizon belongs to a transaction below it too.
 *
 * A transaction that gets its first xid after PRE_COMMIT (PreCommit_Notify
 * may assign one) has written no table rows, so catch-up never needs it; it
 * registers nothing.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/transam.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
}

#include "inflight.hpp"

namespace livenotify
{

namespace
{

pg_atomic_uint64 *slots = nullptr;
int nslots = 0;

/* This backend's slot holds a value. */
bool registered = false;

/* The horizon of this backend's last read(). */
ReadHorizon last_horizon = {false, 0, 0};

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

int
SlotCount()
{
	/* The same count as ProcGlobal's PGPROC array (InitProcGlobal, proc.c). */
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

void
InflightShmemRequest()
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(mul_size(sizeof(pg_atomic_uint64), SlotCount()));
}

void
InflightShmemStartup()
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	nslots = SlotCount();
	slots = static_cast<pg_atomic_uint64 *>(ShmemInitStruct(
		"livenotify in-flight transactions", sizeof(pg_atomic_uint64) * nslots, &found));
	if (!found)
	{
		for (int i = 0; i < nslots; i++)
			pg_atomic_init_u64(&slots[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

inline pg_atomic_uint64 *
MySlot()
{
	if (slots == nullptr || MyProc == nullptr || MyProc->pgprocno < 0 || MyProc->pgprocno >= nslots)
		return nullptr;
	return &slots[MyProc->pgprocno];
}

/* xid, a running or registered xid, as a FullTransactionId relative to next (which follows it). */
uint64
Widen(FullTransactionId next, TransactionId xid)
{
	uint32 epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next) && epoch > 0)
		epoch--;
	return U64FromFullTransactionId(FullTransactionIdFromEpochAndXid(epoch, xid));
}

} /* namespace */

void
InitInflight()
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = InflightShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = InflightShmemStartup;
}

void
InflightRegister(uint64 fxid) noexcept
{
	pg_atomic_uint64 *slot = MySlot();

	if (fxid == 0 || slot == nullptr)
		return;
	pg_atomic_write_u64(slot, fxid);
	/*
	 * Pairs with the reader's barrier in InflightHorizonStart; the
	 * ProcArrayLock taken by ProcArrayEndTransaction orders it as well.
	 */
	pg_write_barrier();
	registered = true;
}

void
InflightClear() noexcept
{
	pg_atomic_uint64 *slot = MySlot();

	if (!registered || slot == nullptr)
		return;
	pg_atomic_write_u64(slot, 0);
	registered = false;
}

ReadHorizon
InflightHorizonStart()
{
	ReadHorizon h = {false, 0, 0};
	TransactionId oldest;
	FullTransactionId next;
	uint64 xmin;

	if (slots == nullptr || RecoveryInProgress())
		return h;
	oldest = GetOldestActiveTransactionId();
	/* Read after: oldest is at most the nextXid that call saw. */
	next = ReadNextFullTransactionId();
	xmin = Widen(next, oldest);
	pg_read_barrier();
	for (int i = 0; i < nslots; i++)
	{
		uint64 v = pg_atomic_read_u64(&slots[i]);

		if (v != 0 && v < xmin)
			xmin = v;
	}
	h.valid = true;
	h.xmin = xmin;
	return h;
}

void
InflightHorizonFinish(ReadHorizon *h)
{
	if (!h->valid)
		return;
	/* Every appended transaction had all its xids assigned before now. */
	h->xmax = U64FromFullTransactionId(ReadNextFullTransactionId());
}

void
InflightSetLastHorizon(const ReadHorizon &h)
{
	last_horizon = h;
}

ReadHorizon
InflightLastHorizon()
{
	return last_horizon;
}

} /* namespace livenotify */
