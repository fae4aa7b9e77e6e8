/*-------------------------------------------------------------------------
 *
 * sources.hpp
 *	  Registered sources (livenotify.source_tables) and their columns as
 *	  found, by name, in the relation a capture trigger fires on.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"

#include "utils/rel.h"
}

namespace livenotify
{

/* The source's columns in one relation (a registered table or a partition of it). */
struct SourceColumns
{
	int user_att; /* attribute numbers in that relation's TupleDesc */
	int type_att;
	int id_att;
	int read_att;	   /* 0: the source has no read column */
	bool usable;	   /* false: a column is missing or of a type we cannot read */
	char problem[160]; /* why not usable, for the WARNING */
};

/* Called from _PG_init. */
void InitSources();

/*
 * The columns of the source a capture trigger names (its one argument) in
 * the relation it fired on.  ERROR if the argument is not a source that
 * register() created for this relation or an ancestor of it (a forged
 * trigger).  A source whose columns cannot be read in this relation comes
 * back !usable: the caller skips the row (SourceWarnOnce), the app's write
 * goes on.
 */
const SourceColumns *SourceResolve(Relation rel, const char *source, const char *trigger_name);

/* WARNING that the row was not captured, once per statement per relation and source. */
void SourceWarnOnce(Relation rel, const char *source, const SourceColumns *cols);

} /* namespace livenotify */
