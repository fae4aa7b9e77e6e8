/*-------------------------------------------------------------------------
 *
 * moves.hpp
 *	  Rows moved from one partition to another by an UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"

#include "access/htup.h"
}

namespace livenotify
{

/* Was this deleted tuple (an AFTER DELETE trigger's OLD row) moved to another partition? */
bool TupleMovedPartitions(HeapTuple tuple);

/* Remember that the row (source, id) left its partition in this transaction. */
void MoveRecord(const char *source, int64 id);

/* Is this inserted row (source, id) the arrival of a recorded move?  Forgets it. */
bool MoveConsume(const char *source, int64 id);

} /* namespace livenotify */
