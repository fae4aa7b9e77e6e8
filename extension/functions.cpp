/*-------------------------------------------------------------------------
 *
 * functions.cpp
 *	  SQL-callable functions: send(), read(), position(), stats,
 *	  check_loaded().  Registration and catch-up are SQL/PL/pgSQL in the
 *	  install script; they call check_loaded() first.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "executor/execdesc.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/portal.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"
}

#include "guard.hpp"
#include "pending.hpp"
#include "ring.hpp"

#include <cstring>

using namespace livenotify;

namespace
{

/* Kinds the sidecar's protocol uses for itself. */
const char *const reserved_kinds[] = {"notification", "unread_count", "hello",
									  "resync",		  "lost",		  "overflow"};

void
ArgNotNull(FunctionCallInfo fcinfo, int argno, const char *name, const char *func)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("%s of livenotify.%s() must not be NULL", name, func)));
}

void
CheckKind(const char *kind)
{
	size_t len = strlen(kind);

	/* Not echoed when too long: the message would be as big as the argument. */
	if (len > ENTRY_MAX_KIND_LEN)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("livenotify message kind of %zu bytes is too long", len),
						errdetail("A kind has 1 to %zu characters.", ENTRY_MAX_KIND_LEN)));
	if (len == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid livenotify message kind \"%s\"", kind),
						errdetail("A kind has 1 to %zu characters.", ENTRY_MAX_KIND_LEN)));
	for (size_t i = 0; i < len; i++)
	{
		char c = kind[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("invalid livenotify message kind \"%s\"", kind),
							errdetail("A kind uses only a-z, 0-9, '_', '.' and '-'.")));
	}
	for (const char *r : reserved_kinds)
		if (strcmp(kind, r) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("livenotify message kind \"%s\" is reserved", kind),
					 errdetail("send() cannot use the kinds notification, unread_count, hello, "
							   "resync, lost and overflow.")));
}

/*
 * The ring of a hot standby is its own: no commit of the primary reaches it
 * (WAL replay runs no transaction callbacks), and a reader there would wait
 * forever while a send() there would reach nobody.  Say so instead.
 */
void
RequirePrimary(const char *func)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("livenotify.%s() cannot run on a hot standby: livenotify runs on the "
						"primary",
						func),
				 errdetail("Entries are published by the primary's commits into the primary's "
						   "shared memory; a standby never receives them."),
				 errhint("Connect to the primary server.")));
}

/*
 * send(user_key text, kind text, payload jsonb): an ephemeral message,
 * delivered at commit like a row, never stored.
 */
Datum
send_cpp(PG_FUNCTION_ARGS)
{
	char *user;
	char *kind;
	char *payload;
	size_t payload_len;

	RequireRing();
	RequirePrimary("send");
	ArgNotNull(fcinfo, 0, "user_key", "send");
	ArgNotNull(fcinfo, 1, "kind", "send");
	ArgNotNull(fcinfo, 2, "payload", "send");

	user = text_to_cstring(PG_GETARG_TEXT_PP(0));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CheckKind(kind);
	if (user[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("user_key of livenotify.send() must not be empty")));

	{
		Jsonb *jb = PG_GETARG_JSONB_P(2);

		payload = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
	}
	payload_len = strlen(payload);
	if (payload_len + strlen(user) > RingMaxPayload())
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("livenotify message of %zu bytes exceeds the limit of %zu bytes",
							   payload_len + strlen(user), RingMaxPayload()),
						errdetail("The limit is livenotify.max_payload, capped at a quarter of "
								  "livenotify.ring_size."),
						errhint("Send a smaller payload, e.g. an id the client fetches.")));

	PendingAdd(
		PendingMakeEntry(nullptr, 0, kind, strlen(kind), user, strlen(user), payload, payload_len));
	PG_RETURN_VOID();
}

/* Is every entry of a plan's target list a plain column reference? */
bool
OnlyVars(const List *tlist)
{
	ListCell *lc;

	foreach (lc, tlist)
	{
		const TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (!IsA(tle->expr, Var))
			return false;
	}
	return true;
}

bool
ConstOrParam(const Node *n)
{
	return n == nullptr || IsA(n, Const) || IsA(n, Param);
}

/*
 * May read() stop advertising this backend's xmin while it waits?  A wait
 * of up to timeout_ms with the statement's snapshot held would hold back
 * vacuum cluster-wide (pg_sleep() does).  Clearing MyProc->xmin is safe only
 * if no snapshot this transaction holds is used to read a table afterwards,
 * which is the case exactly when:
 *	- the isolation level is READ COMMITTED (no transaction snapshot kept
 *	  across statements);
 *	- read() is called directly by the statement being run (its active
 *	  snapshot is the portal's; a function calling read() pushes its own);
 *	- that statement is read() alone: a FunctionScan of this one function
 *	  with constant or parameter arguments, plain columns in its target
 *	  list, no filter, no subplan, at most under Sort or Limit (SELECT cols
 *	  FROM livenotify.read($1, $2, $3) ORDER BY seq LIMIT n): nothing else
 *	  in it reads a table or calls a function that could;
 *	- and (checked before each wait, in ring.cpp) no other snapshot is
 *	  registered (an open cursor has one), once the catalog snapshot is
 *	  dropped.
 * Otherwise read() holds its xmin while it waits, like any statement.
 */
bool
StatementIsReadAlone(Oid funcoid)
{
	Portal portal = ActivePortal;
	QueryDesc *qd;
	Plan *plan;
	const FunctionScan *scan;
	const RangeTblFunction *rtf;
	const FuncExpr *call;
	ListCell *lc;

	if (IsolationUsesXactSnapshot() || portal == nullptr || portal->strategy != PORTAL_ONE_SELECT ||
		(qd = portal->queryDesc) == nullptr || !ActiveSnapshotSet() ||
		GetActiveSnapshot() != qd->snapshot || qd->plannedstmt->subplans != NIL)
		return false;
	plan = qd->plannedstmt->planTree;
	while (plan != nullptr && (IsA(plan, Sort) || IsA(plan, Limit)))
	{
		if (plan->qual != NIL || plan->initPlan != NIL || !OnlyVars(plan->targetlist) ||
			(IsA(plan, Limit) && (!ConstOrParam(reinterpret_cast<Limit *>(plan)->limitCount) ||
								  !ConstOrParam(reinterpret_cast<Limit *>(plan)->limitOffset))))
			return false;
		plan = plan->lefttree;
	}
	if (plan == nullptr || !IsA(plan, FunctionScan) || plan->qual != NIL || plan->initPlan != NIL ||
		!OnlyVars(plan->targetlist))
		return false;
	scan = reinterpret_cast<const FunctionScan *>(plan);
	if (list_length(scan->functions) != 1)
		return false;
	rtf = linitial_node(RangeTblFunction, scan->functions);
	if (!IsA(rtf->funcexpr, FuncExpr))
		return false;
	call = reinterpret_cast<const FuncExpr *>(rtf->funcexpr);
	if (call->funcid != funcoid)
		return false;
	foreach (lc, call->args)
		if (!ConstOrParam(static_cast<const Node *>(lfirst(lc))))
			return false;
	return true;
}

/* The columns of read()'s result, in order. */
enum ReadColumn
{
	READ_EPOCH,
	READ_SEQ,
	READ_LOST,
	READ_SOURCE,
	READ_USER_KEY,
	READ_KIND,
	READ_PAYLOAD,
	READ_XID,
	READ_UNREAD,
	READ_NCOLUMNS
};

/*
 * read(after bigint, max_entries int, timeout_ms int)
 *	 RETURNS TABLE(epoch, seq, lost, source, user_key, kind, payload, xid, unread)
 */
Datum
read_cpp(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	int64 after;
	int32 max_entries;
	int32 timeout_ms;
	RingReadResult res;

	RequireRing();
	RequirePrimary("read");
	ArgNotNull(fcinfo, 0, "after", "read");
	ArgNotNull(fcinfo, 1, "max_entries", "read");
	ArgNotNull(fcinfo, 2, "timeout_ms", "read");
	after = PG_GETARG_INT64(0);
	max_entries = PG_GETARG_INT32(1);
	timeout_ms = PG_GETARG_INT32(2);
	if (after < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("after must be >= 0, got " INT64_FORMAT, after),
						errhint("Start from livenotify.position().")));
	if (max_entries < 1 || max_entries > 100000)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("max_entries must be between 1 and 100000, got %d", max_entries)));
	if (timeout_ms < 0 || timeout_ms > 3600 * 1000)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("timeout_ms must be between 0 and 3600000, got %d", timeout_ms)));

	InitMaterializedSRF(fcinfo, 0);
	res = RingRead(static_cast<uint64>(after), max_entries, timeout_ms,
				   StatementIsReadAlone(fcinfo->flinfo->fn_oid));

	if (res.lost > 0)
	{
		Datum values[READ_NCOLUMNS] = {0};
		bool nulls[READ_NCOLUMNS];

		/* epoch, seq (the last lost one), lost and kind; nothing else. */
		for (bool &n : nulls)
			n = true;
		values[READ_EPOCH] = Int64GetDatum(static_cast<int64>(res.epoch));
		values[READ_SEQ] = Int64GetDatum(static_cast<int64>(res.lost_last_seq));
		values[READ_LOST] = Int64GetDatum(static_cast<int64>(res.lost));
		values[READ_KIND] = CStringGetTextDatum("lost");
		nulls[READ_EPOCH] = nulls[READ_SEQ] = nulls[READ_LOST] = nulls[READ_KIND] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < res.nentries; i++)
	{
		const EntryHeader *e = res.entries[i];
		Datum values[READ_NCOLUMNS] = {0};
		bool nulls[READ_NCOLUMNS] = {false};

		values[READ_EPOCH] = Int64GetDatum(static_cast<int64>(res.epoch));
		values[READ_SEQ] = Int64GetDatum(static_cast<int64>(e->seq));
		values[READ_LOST] = Int64GetDatum(0);
		if (e->flags & ENTRY_SOURCE_NULL)
			nulls[READ_SOURCE] = true;
		else
			values[READ_SOURCE] =
				PointerGetDatum(cstring_to_text_with_len(EntrySource(e), e->source_len));
		/* No user key: an unread_count for every user of the source (TRUNCATE). */
		if (e->flags & ENTRY_USER_NULL)
			nulls[READ_USER_KEY] = true;
		else
			values[READ_USER_KEY] =
				PointerGetDatum(cstring_to_text_with_len(EntryUser(e), e->user_len));
		values[READ_KIND] = PointerGetDatum(cstring_to_text_with_len(EntryKind(e), e->kind_len));
		if (e->flags & ENTRY_PAYLOAD_NULL)
			nulls[READ_PAYLOAD] = true;
		else
			values[READ_PAYLOAD] =
				PointerGetDatum(cstring_to_text_with_len(EntryPayload(e), e->payload_len));
		/* xid8; a transaction without an xid (send() alone) has none. */
		if (e->xid == 0)
			nulls[READ_XID] = true;
		else
			values[READ_XID] = FullTransactionIdGetDatum(FullTransactionIdFromU64(e->xid));
		/* Only a notification of a source with a read column knows (entry.hpp). */
		if (e->flags & ENTRY_READ_STATE)
			values[READ_UNREAD] = BoolGetDatum((e->flags & ENTRY_UNREAD) != 0);
		else
			nulls[READ_UNREAD] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* position(OUT epoch bigint, OUT last_seq bigint) */
Datum
position_cpp(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	RingPosition p = RingGetPosition();
	Datum values[2];
	bool nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "livenotify.position() must return a composite type");
	desc = BlessTupleDesc(desc);
	values[0] = Int64GetDatum(static_cast<int64>(p.epoch));
	values[1] = Int64GetDatum(static_cast<int64>(p.last_seq));
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* stats_raw(): one row, the livenotify.stats view's source. */
Datum
stats_raw_cpp(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	RingStats s = RingGetStats();
	Datum values[12];
	bool nulls[12] = {false};

	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "livenotify.stats_raw() must return a composite type");
	desc = BlessTupleDesc(desc);
	values[0] = Int64GetDatum(static_cast<int64>(s.enqueued));
	values[1] = Int64GetDatum(static_cast<int64>(s.filtered));
	values[2] = Int64GetDatum(static_cast<int64>(s.lost));
	values[3] = Int64GetDatum(static_cast<int64>(s.oversize));
	values[4] = Int64GetDatum(static_cast<int64>(s.ring_bytes));
	values[5] = Int64GetDatum(static_cast<int64>(s.ring_used_bytes));
	values[6] = Int64GetDatum(static_cast<int64>(s.ring_entries));
	values[7] = Int32GetDatum(s.readers);
	values[8] = Int32GetDatum(s.waiting_readers);
	values[9] = Int64GetDatum(static_cast<int64>(s.epoch));
	values[10] = Int64GetDatum(static_cast<int64>(s.last_seq));
	values[11] = Int64GetDatum(static_cast<int64>(s.oldest_seq));
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* check_loaded(): the install script's functions call this first. */
Datum
check_loaded_cpp(PG_FUNCTION_ARGS)
{
	RequireRing();
	PG_RETURN_VOID();
}

/*
 * skipped_not_loaded(): trigger calls of this session that did nothing
 * because the library is not preloaded (ring.cpp, RingSkipUnloaded).  Works
 * unloaded, which is when it means something; 0 on a preloaded server.
 */
Datum
skipped_not_loaded_cpp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(static_cast<int64>(RingSkippedUnloaded()));
}

/* max_payload(): the effective limit, for catchup()'s stub. */
Datum
max_payload_cpp(PG_FUNCTION_ARGS)
{
	RequireRing();
	PG_RETURN_INT32(static_cast<int32>(RingMaxPayload()));
}

/*
 * _counts_changed(source): at commit, tell readers that every unread count
 * of the source may have changed (the entry a TRUNCATE makes).  register()
 * and unregister() call it: a reader that caches counts must not carry them
 * across a registration on another read or user column.
 */
Datum
counts_changed_cpp(PG_FUNCTION_ARGS)
{
	text *source;

	RequireRing();
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("source of livenotify._counts_changed() must not be NULL")));
	source = PG_GETARG_TEXT_PP(0);
	PendingAddUnreadCount(VARDATA_ANY(source), VARSIZE_ANY_EXHDR(source), nullptr, 0);
	PG_RETURN_VOID();
}

/*
 * _require_owner(tbl regclass): ERROR unless the calling role owns tbl (or
 * is a member of the owning role, as pg_class_ownercheck() decides for ALTER
 * TABLE).  register() and unregister() are SECURITY DEFINER, so inside them
 * current_user is the extension's owner; the calling role is
 * GetOuterUserId(), the current user outside any SECURITY DEFINER function
 * (miscinit.c), which follows SET ROLE, unlike session_user.  NULL and an
 * OID that names no relation pass: the caller reports them.
 */
Datum
require_owner_cpp(PG_FUNCTION_ARGS)
{
	Oid relid;
	HeapTuple tuple;
	Oid owner;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	relid = PG_GETARG_OID(0);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		PG_RETURN_VOID();
	owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	if (!has_privs_of_role(GetOuterUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of table %s",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)))),
				 errdetail("Role \"%s\" may register and unregister only the tables it owns.",
						   GetUserNameFromId(GetOuterUserId(), false))));
	PG_RETURN_VOID();
}

} /* namespace */

LIVENOTIFY_FUNCTION(require_owner)
LIVENOTIFY_FUNCTION(counts_changed)
LIVENOTIFY_FUNCTION(send)
LIVENOTIFY_FUNCTION(read)
LIVENOTIFY_FUNCTION(position)
LIVENOTIFY_FUNCTION(stats_raw)
LIVENOTIFY_FUNCTION(check_loaded)
LIVENOTIFY_FUNCTION(max_payload)
LIVENOTIFY_FUNCTION(skipped_not_loaded)
