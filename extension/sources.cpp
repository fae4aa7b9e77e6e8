/*-------------------------------------------------------------------------
 *
 * sources.cpp
 *	  Registered sources and their columns, resolved by name per relation.
 *
 * A capture trigger carries one argument, its source's name.  The columns
 * are in livenotify.source_tables, by name (what a dump restores; the
 * event triggers of livenotify--0.2.sql keep the names right across
 * renames and refuse the DDL they cannot follow).  Each relation a trigger
 * fires on, the registered table or any partition of it, finds the columns
 * by name in its own TupleDesc: attribute numbers are per relation (a
 * partition attached with another column order, a table restored without
 * its dropped columns), as PostgreSQL's own build_attrmap_by_name() treats
 * them when it crosses from a parent to a partition.
 *
 * Two caches, per backend:
 *	- the list of sources (one query), reloaded after livenotify.source_tables
 *	  changed: a statement trigger on it sends a relcache invalidation, as
 *	  rules.cpp does for the rules.  It is read under the latest snapshot,
 *	  not the transaction's: in REPEATABLE READ the transaction snapshot
 *	  may predate the change whose invalidation we just processed, and the
 *	  stale list would then be cached as valid (ri_triggers.c reads with
 *	  GetLatestSnapshot() for the same reason).
 *	- per (relation, source): the attribute numbers, dropped by a relcache
 *	  invalidation of that relation (any ALTER, ATTACH, DETACH) or of the
 *	  source list.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

#include "sources.hpp"

#include <cstring>

namespace livenotify
{

namespace
{

struct Source
{
	char name[NAMEDATALEN];
	Oid relid;
	char user_column[NAMEDATALEN];
	char type_column[NAMEDATALEN];
	char id_column[NAMEDATALEN];
	char read_column[NAMEDATALEN]; /* "" for none */
};

struct RelKey
{
	Oid relid;
	char source[NAMEDATALEN];
};

struct RelEntry
{
	RelKey key; /* first: the hash key */
	bool valid;
	uint64 generation; /* sources_generation it was resolved under */
	SourceColumns cols;
	LocalTransactionId warned_lxid; /* last WARNING: statement of ... */
	CommandId warned_cid;
};

MemoryContext sources_context = nullptr;
Source *sources = nullptr;
int nsources = 0;
bool sources_valid = false;
uint64 sources_generation = 0;
Oid source_tables_relid = InvalidOid;
HTAB *rel_cache = nullptr;

void
RelcacheCallback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RelEntry *e;

	if (relid == InvalidOid || relid == source_tables_relid)
	{
		sources_valid = false;
		sources_generation++;
		return;
	}
	if (rel_cache == nullptr)
		return;
	/* No allocation here: only flags change (a callback may run anywhere). */
	hash_seq_init(&status, rel_cache);
	while ((e = static_cast<RelEntry *>(hash_seq_search(&status))) != nullptr)
		if (e->key.relid == relid)
			e->valid = false;
}

void
CopyName(char *dst, const char *src)
{
	strlcpy(dst, src ? src : "", NAMEDATALEN);
}

void
LoadSources()
{
	Oid nsp;
	int ret;
	SPIPlanPtr plan;
	uint64 n;

	nsp = get_namespace_oid("livenotify", false);
	source_tables_relid = get_relname_relid("source_tables", nsp);

	if (sources_context == nullptr)
		sources_context =
			AllocSetContextCreate(CacheMemoryContext, "livenotify sources", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(sources_context);
	sources = nullptr;
	nsources = 0;

	/* Valid before reading: an invalidation that arrives meanwhile makes us read again. */
	sources_valid = true;
	sources_generation++;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "livenotify: SPI_connect failed: %s", SPI_result_code_string(ret));
	plan = SPI_prepare("SELECT source, relid::pg_catalog.oid, user_column::pg_catalog.text, "
					   "type_column::pg_catalog.text, id_column::pg_catalog.text, "
					   "read_column::pg_catalog.text FROM livenotify.source_tables",
					   0, nullptr);
	if (plan == nullptr)
		elog(ERROR, "livenotify: preparing the read of livenotify.source_tables failed: %s",
			 SPI_result_code_string(SPI_result));
	ret = SPI_execute_snapshot(plan, nullptr, nullptr, GetLatestSnapshot(), InvalidSnapshot, true,
							   false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "livenotify: reading livenotify.source_tables failed: %s",
			 SPI_result_code_string(ret));

	n = SPI_processed;
	sources =
		static_cast<Source *>(MemoryContextAllocZero(sources_context, sizeof(Source) * (n + 1)));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		Source *s = &sources[nsources];
		char *name = SPI_getvalue(tup, desc, 1);
		Datum relid = SPI_getbinval(tup, desc, 2, &isnull);

		if (name == nullptr || isnull)
			continue;
		CopyName(s->name, name);
		s->relid = DatumGetObjectId(relid);
		CopyName(s->user_column, SPI_getvalue(tup, desc, 3));
		CopyName(s->type_column, SPI_getvalue(tup, desc, 4));
		CopyName(s->id_column, SPI_getvalue(tup, desc, 5));
		CopyName(s->read_column, SPI_getvalue(tup, desc, 6));
		nsources++;
	}
	SPI_finish();
}

const Source *
FindSource(const char *name)
{
	for (int i = 0; i < nsources; i++)
		if (strcmp(sources[i].name, name) == 0)
			return &sources[i];
	return nullptr;
}

/* Is ancestor the relation itself or one of the partitioned tables above it? */
bool
IsSelfOrAncestor(Relation rel, Oid ancestor)
{
	List *ancestors;
	bool found;

	if (RelationGetRelid(rel) == ancestor)
		return true;
	if (!rel->rd_rel->relispartition)
		return false;
	ancestors = get_partition_ancestors(RelationGetRelid(rel));
	found = list_member_oid(ancestors, ancestor);
	list_free(ancestors);
	return found;
}

/* What a column must be for the trigger to read it. */
enum ColumnKind
{
	COLUMN_ANY,	 /* user and id: read through the type's output function */
	COLUMN_TEXT, /* type: text, varchar or char */
	COLUMN_INT,	 /* id: smallint, integer, bigint */
	COLUMN_BOOL, /* read */
};

/*
 * The number of the column named name in rel, or 0 with cols->problem
 * said.  Only reached when the event triggers did not run (they keep the
 * names right and refuse drops and unsupported types).
 */
int
FindColumn(Relation rel, const char *name, const char *role, ColumnKind kind, SourceColumns *cols)
{
	TupleDesc desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid t = att->atttypid;
		bool ok;

		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		switch (kind)
		{
			case COLUMN_TEXT:
				ok = t == TEXTOID || t == VARCHAROID || t == BPCHAROID;
				break;
			case COLUMN_INT:
				ok = t == INT2OID || t == INT4OID || t == INT8OID;
				break;
			case COLUMN_BOOL:
				ok = t == BOOLOID;
				break;
			default:
				ok = true;
				break;
		}
		if (!ok)
		{
			snprintf(cols->problem, sizeof(cols->problem), "its %s column \"%s\" has type %s", role,
					 name, format_type_be(t));
			return 0;
		}
		return i + 1;
	}
	snprintf(cols->problem, sizeof(cols->problem), "it has no %s column \"%s\"", role, name);
	return 0;
}

void
ResolveColumns(Relation rel, const Source *s, SourceColumns *cols)
{
	memset(cols, 0, sizeof(*cols));
	cols->usable = (cols->user_att = FindColumn(rel, s->user_column, "user", COLUMN_ANY, cols)) &&
				   (cols->type_att = FindColumn(rel, s->type_column, "type", COLUMN_TEXT, cols)) &&
				   (cols->id_att = FindColumn(rel, s->id_column, "id", COLUMN_INT, cols)) &&
				   (s->read_column[0] == '\0' ||
					(cols->read_att = FindColumn(rel, s->read_column, "read", COLUMN_BOOL, cols)));
}

} /* namespace */

void
InitSources()
{
	CacheRegisterRelcacheCallback(RelcacheCallback, (Datum) 0);
}

const SourceColumns *
SourceResolve(Relation rel, const char *source, const char *trigger_name)
{
	RelKey key;
	RelEntry *e;
	bool found;
	const Source *s;

	/* Bounded before anything else: a source name is a NAME (CHECK on source_tables). */
	if (strlen(source) >= NAMEDATALEN)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("trigger \"%s\" on table \"%s\" names no livenotify source",
							   trigger_name, RelationGetRelationName(rel)),
						errdetail("Its argument is %zu bytes long; a source name has at most %d.",
								  strlen(source), NAMEDATALEN - 1),
						errhint("Install the triggers with livenotify.register().")));

	if (!sources_valid)
	{
		PG_TRY();
		{
			LoadSources();
		}
		PG_CATCH();
		{
			sources_valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}

	if (rel_cache == nullptr)
	{
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(RelKey);
		ctl.entrysize = sizeof(RelEntry);
		ctl.hcxt = CacheMemoryContext;
		rel_cache = hash_create("livenotify source columns", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	strlcpy(key.source, source, NAMEDATALEN);
	e = static_cast<RelEntry *>(hash_search(rel_cache, &key, HASH_FIND, nullptr));
	if (e != nullptr && e->valid && e->generation == sources_generation)
		return &e->cols;

	s = FindSource(source);
	if (s == nullptr)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("trigger \"%s\" on table \"%s\" names livenotify source \"%s\", "
							   "which is not registered",
							   trigger_name, RelationGetRelationName(rel), source),
						errhint("Install the triggers with livenotify.register().")));
	if (!IsSelfOrAncestor(rel, s->relid))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("trigger \"%s\" on table \"%s\" names livenotify source \"%s\", "
							   "which is registered on another table",
							   trigger_name, RelationGetRelationName(rel), source),
						errdetail("The source captures table \"%s\" and its partitions.",
								  get_rel_name(s->relid) ? get_rel_name(s->relid) : "?"),
						errhint("Install the triggers with livenotify.register().")));

	/* Resolve first, then enter: an ERROR above leaves no half-made entry. */
	e = static_cast<RelEntry *>(hash_search(rel_cache, &key, HASH_ENTER, &found));
	(void) found; /* new or stale: filled in whole either way */
	ResolveColumns(rel, s, &e->cols);
	e->generation = sources_generation;
	e->warned_lxid = InvalidLocalTransactionId;
	e->warned_cid = InvalidCommandId;
	e->valid = true;
	return &e->cols;
}

void
SourceWarnOnce(Relation rel, const char *source, const SourceColumns *cols)
{
	/* cols is the cols member of a RelEntry (SourceResolve returned it). */
	RelEntry *e = reinterpret_cast<RelEntry *>(
		reinterpret_cast<char *>(const_cast<SourceColumns *>(cols)) - offsetof(RelEntry, cols));
	CommandId cid = GetCurrentCommandId(false);

	if (e->warned_lxid == MyProc->lxid && e->warned_cid == cid)
		return;
	e->warned_lxid = MyProc->lxid;
	e->warned_cid = cid;
	ereport(WARNING,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("livenotify source \"%s\" cannot read table \"%s\": %s; rows not captured",
					source, RelationGetRelationName(rel), cols->problem),
			 errhint("Unregister the source and register it again with existing columns.")));
}

} /* namespace livenotify */
