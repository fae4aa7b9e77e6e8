/*-------------------------------------------------------------------------
 *
 * moves.cpp
 *	  Rows moved from one partition to another by an UPDATE.
 *
 * PostgreSQL runs an UPDATE that changes a row's partition as a DELETE
 * from the old partition and an INSERT into the new one
 * (nodeModifyTable.c, ExecCrossPartitionUpdate), and fires the row
 * triggers of those: AFTER DELETE on one partition, AFTER INSERT on the
 * other.  The row is not new, so it must not be a new notification.
 *
 * heap_delete(changingPart = true) marks the old tuple's t_ctid as "moved
 * partitions" (HeapTupleHeaderSetMovedPartitions), and the AFTER DELETE
 * trigger is given that tuple as fetched from the page
 * (trigger.c, AfterTriggerExecute).  So the delete trigger knows a move
 * when it sees one and records (source, id); the insert trigger of the same
 * row, queued right after it in the same statement's event list, finds the
 * record and takes it: no notification.  Records live in the top
 * transaction's memory.  A move whose row left the source altogether (a
 * source registered on a sub-partitioned table, the row moved out of it)
 * leaves its record behind; at most MAX_MOVES are kept, then the set starts
 * over (such a row, moved back in the same transaction, would then be a
 * notification again: never a lost one).
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "storage/proc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
}

#include "moves.hpp"

#include <cstring>

namespace livenotify
{

namespace
{

constexpr long MAX_MOVES = 10000;

struct MoveKey
{
	char source[NAMEDATALEN];
	int64 id;
};

HTAB *moves = nullptr;
LocalTransactionId moves_lxid = InvalidLocalTransactionId;

/* The set for this transaction, or nullptr if none was made (create: make one). */
HTAB *
Moves(bool create)
{
	/* TopTransactionContext of an earlier transaction is gone: forget its set. */
	if (moves_lxid != MyProc->lxid)
	{
		moves = nullptr;
		moves_lxid = MyProc->lxid;
	}
	if (moves == nullptr && create)
	{
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(MoveKey);
		ctl.entrysize = sizeof(MoveKey);
		ctl.hcxt = TopTransactionContext;
		moves =
			hash_create("livenotify moved rows", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	return moves;
}

void
MakeKey(MoveKey *key, const char *source, int64 id)
{
	memset(key, 0, sizeof(*key));
	strlcpy(key->source, source, NAMEDATALEN);
	key->id = id;
}

} /* namespace */

bool
TupleMovedPartitions(HeapTuple tuple)
{
	return tuple->t_data != nullptr && HeapTupleHeaderIndicatesMovedPartitions(tuple->t_data);
}

void
MoveRecord(const char *source, int64 id)
{
	HTAB *set = Moves(true);
	MoveKey key;

	if (hash_get_num_entries(set) >= MAX_MOVES)
	{
		hash_destroy(set);
		moves = nullptr;
		set = Moves(true);
	}
	MakeKey(&key, source, id);
	hash_search(set, &key, HASH_ENTER, nullptr);
}

bool
MoveConsume(const char *source, int64 id)
{
	HTAB *set = Moves(false);
	MoveKey key;
	bool found = false;

	if (set == nullptr)
		return false;
	MakeKey(&key, source, id);
	hash_search(set, &key, HASH_REMOVE, &found);
	return found;
}

} /* namespace livenotify */
