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

/*
 * {"id":<id>,"truncated":true}, the stub queued for a row whose JSON is over
 * the limit: valid JSON and at most max_len bytes whatever the id column
 * holds (an id too long for it is written as null).  max_len must be at
 * least 28, the stub with id null (livenotify.max_payload is at least 64).
 */
const char *SerializeStub(Relation rel, HeapTuple tuple, int id_att, size_t max_len, size_t *len);

} /* namespace livenotify */
