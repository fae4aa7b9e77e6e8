/*-------------------------------------------------------------------------
 *
 * inflight.hpp
 *	  Transactions that have committed (or are about to) but whose entries
 *	  are not in the ring yet, and the read horizon built from them.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"
}

namespace livenotify
{

/* Called from _PG_init while shared_preload_libraries is processed. */
void InitInflight();

/*
 * PRE_COMMIT of a transaction with queued entries: advertise its top-level
 * FullTransactionId (as a uint64; 0 does nothing) until its entries are in
 * the ring.  Cannot fail.
 */
void InflightRegister(uint64 fxid) noexcept;

/* This backend's entries are in the ring, or it aborted.  Cannot fail. */
void InflightClear() noexcept;

struct ReadHorizon
{
	bool valid;
	uint64 xmin; /* every transaction with a top-level xid below it has all its entries read */
	uint64 xmax; /* every entry read belongs to a transaction whose xids are all below it */
};

/*
 * The first half of a horizon, taken *before* the ring lock: xmin is the
 * oldest top-level xid that was still running or registered in flight.  Any
 * transaction below it had appended its entries before this call returned.
 * valid is false during recovery.
 */
ReadHorizon InflightHorizonStart();

/* The second half, taken after the copy: xmax is the next FullTransactionId. */
void InflightHorizonFinish(ReadHorizon *h);

/* The horizon of this backend's last read(): set by RingRead (invalid unless it read to the end).
 */
void InflightSetLastHorizon(const ReadHorizon &h);
ReadHorizon InflightLastHorizon();

} /* namespace livenotify */
