/*-------------------------------------------------------------------------
 *
 * rules.cpp
 *	  Per-type delivery rules (livenotify.rules), cached per backend.
 *
 * Plain DML on livenotify.rules does not invalidate anything by itself, so
 * a statement-level trigger on that table (livenotify.rules_changed) calls
 * CacheInvalidateRelcache() on it.  The invalidation is sent at commit and
 * every backend processes it at its next transaction start (or lock
 * acquisition); the changing backend processes it at its next command.  Our
 * relcache callback then marks the cache stale and the next trigger call
 * reloads it with one scan of the table under a fresh catalog snapshot
 * (LoadRules says why not the transaction's).  No per-row query, no
 * restart.
 *
 * The cache is a sorted array of (source, type, deliver) in its own memory
 * context, searched with bsearch: a source has a handful of rules.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include "rules.hpp"

#include <cstdlib>
#include <cstring>

namespace livenotify
{

namespace
{

struct Rule
{
	const char *source;
	const char *type;
	size_t type_len;
	bool deliver;
};

MemoryContext rules_context = nullptr;
Rule *rules = nullptr;
int nrules = 0;
bool rules_valid = false;
Oid rules_relid = InvalidOid;

int
CompareRule(const char *source, const char *type, size_t type_len, const Rule *r)
{
	int c = strcmp(source, r->source);
	size_t n;

	if (c != 0)
		return c;
	n = Min(type_len, r->type_len);
	c = memcmp(type, r->type, n);
	if (c != 0)
		return c;
	return (type_len > r->type_len) - (type_len < r->type_len);
}

int
RuleSortCmp(const void *a, const void *b)
{
	const Rule *ra = static_cast<const Rule *>(a);
	const Rule *rb = static_cast<const Rule *>(b);

	return CompareRule(ra->source, ra->type, ra->type_len, rb);
}

const Rule *
FindRule(const char *source, const char *type, size_t type_len)
{
	int lo = 0;
	int hi = nrules - 1;

	while (lo <= hi)
	{
		int mid = (lo + hi) / 2;
		int c = CompareRule(source, type, type_len, &rules[mid]);

		if (c == 0)
			return &rules[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return nullptr;
}

void
RelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid)
		rules_valid = false;
}

/* The text of column attnum of a rules row, or NULL. */
char *
RuleColumn(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool isnull;
	Datum d = heap_getattr(tup, attnum, desc, &isnull);

	return isnull ? nullptr : TextDatumGetCString(d);
}

/*
 * Read livenotify.rules into the cache.
 *
 * Not with SPI under the transaction snapshot: in a REPEATABLE READ or
 * SERIALIZABLE transaction that snapshot predates the rule whose
 * invalidation made us reload, so the cache would be marked valid with the
 * old rules and keep them for the rest of the session.  A catalog snapshot
 * (systable_beginscan with no snapshot takes GetCatalogSnapshot(), genam.c;
 * for a relation with no syscache it is taken afresh, snapmgr.c
 * GetNonHistoricCatalogSnapshot) sees every committed rule, and this
 * transaction's own earlier commands, whatever the isolation level.
 *
 * Ordering: a committing transaction becomes visible in the proc array
 * before it sends its invalidations (xact.c CommitTransaction:
 * ProcArrayEndTransaction, then AtEOXact_Inval).  So a rule our snapshot
 * misses sends its invalidation after we set rules_valid, which resets it
 * and the next call reloads.
 */
void
LoadRules()
{
	Oid nsp;
	Relation rel;
	TupleDesc desc;
	SysScanDesc scan;
	HeapTuple tup;
	int capacity = 16;

	nsp = get_namespace_oid("livenotify", false);
	rules_relid = get_relname_relid("rules", nsp);
	if (!OidIsValid(rules_relid))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
						errmsg("livenotify: table livenotify.rules does not exist")));

	if (rules_context == nullptr)
		rules_context =
			AllocSetContextCreate(CacheMemoryContext, "livenotify rules", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(rules_context);
	rules = nullptr;
	nrules = 0;

	/*
	 * Mark valid before reading: an invalidation that arrives while we read
	 * (table_open accepts pending ones) resets the flag and the next call
	 * reloads again.
	 */
	rules_valid = true;

	rel = table_open(rules_relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	if (desc->natts < 3 || TupleDescAttr(desc, 0)->atttypid != TEXTOID ||
		TupleDescAttr(desc, 1)->atttypid != TEXTOID || TupleDescAttr(desc, 2)->atttypid != TEXTOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("livenotify: table livenotify.rules does not have the columns (source "
						"text, type text, action text)"),
				 errhint("Reinstall the extension.")));

	rules = static_cast<Rule *>(MemoryContextAlloc(rules_context, sizeof(Rule) * capacity));
	scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		char *source = RuleColumn(tup, desc, 1);
		char *type = RuleColumn(tup, desc, 2);
		char *action = RuleColumn(tup, desc, 3);

		if (source == nullptr || type == nullptr)
			continue;
		if (nrules == capacity)
		{
			capacity *= 2;
			rules = static_cast<Rule *>(repalloc(rules, sizeof(Rule) * capacity));
		}
		rules[nrules].source = MemoryContextStrdup(rules_context, source);
		rules[nrules].type = MemoryContextStrdup(rules_context, type);
		rules[nrules].type_len = strlen(type);
		rules[nrules].deliver = action != nullptr && strcmp(action, "deliver") == 0;
		nrules++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	qsort(rules, nrules, sizeof(Rule), RuleSortCmp);
}

} /* namespace */

void
InitRules()
{
	CacheRegisterRelcacheCallback(RelcacheCallback, (Datum) 0);
}

void
RulesInvalidate()
{
	rules_valid = false;
}

bool
RulesDeliver(const char *source, const char *type, size_t type_len)
{
	const Rule *r;

	if (!rules_valid)
	{
		PG_TRY();
		{
			LoadRules();
		}
		PG_CATCH();
		{
			rules_valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}

	r = FindRule(source, type, type_len);
	if (r == nullptr)
		r = FindRule(source, "*", 1);
	return r == nullptr || r->deliver;
}

} /* namespace livenotify */
