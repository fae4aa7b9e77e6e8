/*-------------------------------------------------------------------------
 *
 * serialize.hpp
 *	  A captured row as JSON, byte for byte what row_to_json() returns.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"

#include "access/htup.h"
#include "utils/relcache.h"
}

namespace livenotify
{

/* Called from _PG_init. */
void InitSerialize();

/*
 * The row of rel as JSON: the same bytes as row_to_json(row)::text.
 * Allocated in the current memory context; *len is its length (the text
 * need not be NUL-terminated).
 */
const char *SerializeRow(Relation rel, HeapTuple tuple, size_t *len);

} /* namespace livenotify */
