/*-------------------------------------------------------------------------
 *
 * pending.hpp
 *	  Entries queued by the current transaction, and the transaction
 *	  callbacks that publish them at COMMIT or drop them on (sub)abort.
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

/* Called from _PG_init. */
void InitPending();

/*
 * Allocate an entry in the current (sub)transaction's memory, laid out and
 * filled in; the caller then passes it to PendingAdd.  payload may be NULL
 * (no payload); source may be NULL (send()); user may be NULL (an
 * unread_count for every user of the source).  flags adds EntryFlags beyond
 * the NULL ones, which are derived from the arguments.
 */
EntryHeader *PendingMakeEntry(const char *source, size_t source_len, const char *kind,
							  size_t kind_len, const char *user, size_t user_len,
							  const char *payload, size_t payload_len, uint16 flags = 0);

/*
 * Queue an entry made by PendingMakeEntry for this transaction's commit.
 * Past livenotify.max_pending the transaction overflows instead (see
 * pending.cpp): the entry is freed and an 'overflow' marker covers it.
 */
void PendingAdd(EntryHeader *entry);

/*
 * For a trigger, before it does any work for a row of this source: true
 * when the transaction has overflowed, so that nothing would be queued
 * (the source is then covered by a marker).
 */
bool PendingSkipOverflowed(const char *source);

/*
 * Queue an unread_count entry for (source, user) unless one is already
 * pending in this transaction: a "mark all as read" UPDATE of a thousand
 * rows sends the user's tabs one fresh count, not a thousand.  user NULL:
 * every user of the source (TRUNCATE), also once per transaction.
 */
void PendingAddUnreadCount(const char *source, size_t source_len, const char *user,
						   size_t user_len);

} /* namespace livenotify */
