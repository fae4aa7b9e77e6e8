/*-------------------------------------------------------------------------
 *
 * guc.cpp
 *	  livenotify.* configuration parameters.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "utils/guc.h"
}

#include "guc.hpp"

#include <climits>

namespace livenotify
{

int guc_ring_size_kb = 64 * 1024;
int guc_max_readers = 16;
int guc_max_payload = 8192;
int guc_max_pending = 8 * 1024 * 1024;
int guc_reader_idle_timeout_ms = 60 * 1000;
bool guc_enabled = true;

void
DefineGucs()
{
	DefineCustomIntVariable("livenotify.ring_size",
							"Size of the shared-memory ring that holds committed entries.",
							"When the ring is full the oldest entries are overwritten and "
							"counted as lost; readers then resync from the table.",
							&guc_ring_size_kb, 64 * 1024, 64, 16 * 1024 * 1024, PGC_POSTMASTER,
							GUC_UNIT_KB, NULL, NULL, NULL);

	DefineCustomIntVariable("livenotify.max_readers",
							"Maximum number of sessions reading the queue at once.", NULL,
							&guc_max_readers, 16, 1, 1024, PGC_POSTMASTER, 0, NULL, NULL, NULL);

	/*
	 * Superuser-only: a larger value lets one session put bigger entries in
	 * the ring that every database shares.
	 */
	DefineCustomIntVariable(
		"livenotify.max_payload", "Largest row JSON or send() payload queued, in bytes.",
		"Larger inserted rows are queued as {\"id\":..,\"truncated\":true}; "
		"larger send() payloads raise an error.  Capped at a quarter of "
		"livenotify.ring_size.",
		&guc_max_payload, 8192, 64, 64 * 1024 * 1024, PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL, NULL);

	/*
	 * Superuser-only: a small value turns every transaction into a resync
	 * of the users of the sources it touched.
	 */
	DefineCustomIntVariable(
		"livenotify.max_pending", "Memory one transaction's queued entries may take, in bytes.",
		"Past it the transaction's entries collapse into one 'overflow' entry per source "
		"(readers resync those users from the table), so a bulk load costs bounded memory "
		"and a short commit.  Capped at a quarter of livenotify.ring_size.",
		&guc_max_pending, 8 * 1024 * 1024, 16 * 1024, INT_MAX, PGC_SUSET, GUC_UNIT_BYTE, NULL, NULL,
		NULL);

	/*
	 * Read by every committing backend: PGC_SIGHUP keeps the value the same
	 * in all of them.
	 */
	DefineCustomIntVariable("livenotify.reader_idle_timeout",
							"Time after which a reader that does not call read() stops counting "
							"overwritten entries as lost.",
							"A session that read once and then idles keeps its reader slot; "
							"it still learns of the gap from its next read().",
							&guc_reader_idle_timeout_ms, 60 * 1000, 100, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomBoolVariable("livenotify.enabled",
							 "Queue rows inserted into registered tables by this session.",
							 "Turn off for bulk backfills that should not reach browsers.",
							 &guc_enabled, true, PGC_USERSET, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("livenotify");
}

} /* namespace livenotify */
