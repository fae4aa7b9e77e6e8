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
 * reloads it with one query.  No per-row query, no restart.
 *
 * The cache is a sorted array of (source, type, deliver) in its own memory
 * context, searched with bsearch: a source has a handful of rules.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
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

void
LoadRules()
{
	Oid nsp;
	int ret;
	uint64 n;

	nsp = get_namespace_oid("livenotify", false);
	rules_relid = get_relname_relid("rules", nsp);

	if (rules_context == nullptr)
		rules_context =
			AllocSetContextCreate(CacheMemoryContext, "livenotify rules", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(rules_context);
	rules = nullptr;
	nrules = 0;

	/*
	 * Mark valid before reading: an invalidation that arrives while we read
	 * resets the flag and the next call reloads again.
	 */
	rules_valid = true;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "livenotify: SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute("SELECT source, type, action = 'deliver' FROM livenotify.rules", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "livenotify: reading livenotify.rules failed: %s", SPI_result_code_string(ret));

	n = SPI_processed;
	rules = static_cast<Rule *>(MemoryContextAlloc(rules_context, sizeof(Rule) * (n + 1)));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		char *source = SPI_getvalue(tup, desc, 1);
		char *type = SPI_getvalue(tup, desc, 2);
		Datum deliver = SPI_getbinval(tup, desc, 3, &isnull);

		if (source == nullptr || type == nullptr)
			continue;
		rules[nrules].source = MemoryContextStrdup(rules_context, source);
		rules[nrules].type = MemoryContextStrdup(rules_context, type);
		rules[nrules].type_len = strlen(type);
		rules[nrules].deliver = !isnull && DatumGetBool(deliver);
		nrules++;
	}
	SPI_finish();

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
