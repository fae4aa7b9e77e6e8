/*-------------------------------------------------------------------------
 *
 * trigger.cpp
 *	  The triggers that livenotify.register() installs on a source table.
 *
 * Every capture trigger has one argument, its source's name; the columns
 * are found by name in the relation the trigger fires on (sources.cpp), so
 * that renames, type changes, dropped and added columns, dump/restore and
 * partitions with another column order all route every row to its user.
 *
 *	  livenotify.capture_insert(source)
 *		livenotify_capture, AFTER INSERT FOR EACH ROW: apply the type rules,
 *		serialise the row as row_to_json does (serialize.cpp; JSON columns
 *		stay JSON), queue a 'notification'.  With a read column the entry
 *		also says whether the row counts as unread, and a row of a skipped
 *		type that counts as unread queues its user's 'unread_count' instead.
 *		A row moved here from another partition (moves.cpp) is no new
 *		notification: only its user's count is refreshed.
 *
 *	  livenotify.capture_read(source)
 *		livenotify_read, AFTER UPDATE FOR EACH ROW (with a read column), and
 *		livenotify_delete, AFTER DELETE FOR EACH ROW (always: it also sees
 *		rows leaving their partition): queue an 'unread_count' for each user
 *		whose count changed, once per user per transaction.  No WHEN clause:
 *		it would make the user and read columns impossible to retype
 *		(ALTER COLUMN TYPE refuses a column a trigger's WHEN uses).
 *
 *	  livenotify.capture_truncate(source)
 *		livenotify_truncate, AFTER TRUNCATE FOR EACH STATEMENT: one
 *		'unread_count' without a user key: every count of the source changed.
 *
 *	  livenotify.rules_changed()
 *		AFTER ... FOR EACH STATEMENT on livenotify.rules and
 *		livenotify.source_tables: invalidate every backend's cache of them
 *		(see rules.cpp, sources.cpp).
 *
 * The unread_count entries cover every committed change to what
 * livenotify.unread_counts() counts (rows of the user whose read column is
 * false), so a reader can keep a cached count exact: the notification of an
 * unread row adds one, everything else says "fetch this count again".
 *
 * A user key is the user column's value as PostgreSQL prints it with ::text
 * (char(n) without its trailing blanks): the form catch-up, counts and the
 * daemon's groups compare.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include "guard.hpp"
#include "guc.hpp"
#include "moves.hpp"
#include "pending.hpp"
#include "ring.hpp"
#include "rules.hpp"
#include "serialize.hpp"
#include "sources.hpp"

#include <cstdlib>
#include <cstring>

using namespace livenotify;

namespace
{

/* The events a capture function is written for. */
enum FiredBy
{
	FIRED_BY_ROW_INSERT,
	FIRED_BY_ROW_UPDATE_OR_DELETE,
	FIRED_BY_TRUNCATE,
};

TriggerData *
CheckTrigger(FunctionCallInfo fcinfo, const char *funcname, int min_nargs, int max_nargs,
			 FiredBy fired_by)
{
	static const char *const expected[] = {
		"AFTER INSERT FOR EACH ROW",
		"AFTER UPDATE or AFTER DELETE FOR EACH ROW",
		"AFTER TRUNCATE FOR EACH STATEMENT",
	};
	TriggerData *trig;
	TriggerEvent ev;
	bool ok = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("%s() can only be called as a trigger", funcname)));
	trig = reinterpret_cast<TriggerData *>(fcinfo->context);
	ev = trig->tg_event;
	switch (fired_by)
	{
		case FIRED_BY_ROW_INSERT:
			ok = TRIGGER_FIRED_FOR_ROW(ev) && TRIGGER_FIRED_BY_INSERT(ev);
			break;
		case FIRED_BY_ROW_UPDATE_OR_DELETE:
			ok = TRIGGER_FIRED_FOR_ROW(ev) &&
				 (TRIGGER_FIRED_BY_UPDATE(ev) || TRIGGER_FIRED_BY_DELETE(ev));
			break;
		case FIRED_BY_TRUNCATE:
			ok = TRIGGER_FIRED_FOR_STATEMENT(ev) && TRIGGER_FIRED_BY_TRUNCATE(ev);
			break;
	}
	if (!TRIGGER_FIRED_AFTER(ev) || !ok)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("%s() must be fired %s", funcname, expected[fired_by]),
						errhint("Install it with livenotify.register().")));
	if (trig->tg_trigger->tgnargs < min_nargs || trig->tg_trigger->tgnargs > max_nargs)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("%s() expects %d trigger arguments, got %d", funcname, max_nargs,
							   trig->tg_trigger->tgnargs),
						errhint("Install it with livenotify.register().")));
	return trig;
}

/*
 * The columns of the trigger's source in the relation it fired on, or
 * nullptr if this row cannot be read (warned once per statement).  The one
 * argument, the source name, is checked by SourceResolve: a trigger that
 * register() did not create is an ERROR.
 */
/*
 * Once per statement and relation: for the WARNINGs about rows not captured,
 * which would otherwise repeat for every row of a bulk INSERT.  The AFTER
 * ROW triggers of one statement fire under its command id.
 */
struct WarnedAt
{
	LocalTransactionId lxid = InvalidLocalTransactionId;
	CommandId cid = InvalidCommandId;
	Oid relid = InvalidOid;
};

bool
FirstInStatement(WarnedAt *w, Relation rel)
{
	CommandId cid = GetCurrentCommandId(false);

	if (w->lxid == MyProc->lxid && w->cid == cid && w->relid == RelationGetRelid(rel))
		return false;
	w->lxid = MyProc->lxid;
	w->cid = cid;
	w->relid = RelationGetRelid(rel);
	return true;
}

/* Is the extension's catalog still 0.1's (livenotify.source_tables without column names)? */
bool
SchemaIsLegacy()
{
	Oid nsp = get_namespace_oid("livenotify", true);
	Oid rel = OidIsValid(nsp) ? get_relname_relid("source_tables", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, "user_column") == InvalidAttrNumber;
}

/*
 * A trigger made by livenotify 0.1, whose arguments after the source are
 * attribute numbers (capture_insert: user, type, id[, read or 0];
 * capture_read: user, read).  They still fire between installing this
 * library and ALTER EXTENSION livenotify UPDATE, which recreates them: the
 * app's writes must go on meanwhile, with 0.1's meaning of the arguments.
 */
const SourceColumns *
LegacyColumns(TriggerData *trig, SourceColumns *cols)
{
	const Trigger *tg = trig->tg_trigger;
	TupleDesc desc = RelationGetDescr(trig->tg_relation);
	bool insert = TRIGGER_FIRED_BY_INSERT(trig->tg_event);
	int *atts[4] = {&cols->user_att, &cols->type_att, &cols->id_att, &cols->read_att};
	static const Oid want[4][3] = {
		{InvalidOid}, {TEXTOID, VARCHAROID, BPCHAROID}, {INT2OID, INT4OID, INT8OID}, {BOOLOID}};

	memset(cols, 0, sizeof(*cols));
	cols->usable = true;
	for (int i = 1; i < tg->tgnargs && cols->usable; i++)
	{
		int role = insert ? i - 1 : (i == 1 ? 0 : 3);
		long attnum = strtol(tg->tgargs[i], nullptr, 10);
		Form_pg_attribute att;
		bool ok;

		if (role == 3 && attnum == 0)
			continue; /* no read column */
		if (attnum < 1 || attnum > desc->natts || TupleDescAttr(desc, attnum - 1)->attisdropped)
		{
			snprintf(cols->problem, sizeof(cols->problem),
					 "its 0.1 trigger names column number %ld, which was dropped", attnum);
			cols->usable = false;
			break;
		}
		att = TupleDescAttr(desc, attnum - 1);
		ok = want[role][0] == InvalidOid || att->atttypid == want[role][0] ||
			 att->atttypid == want[role][1] || att->atttypid == want[role][2];
		if (role == 3)
			ok = att->atttypid == BOOLOID;
		if (!ok)
		{
			snprintf(cols->problem, sizeof(cols->problem),
					 "its 0.1 trigger names column \"%s\" of type %s", NameStr(att->attname),
					 format_type_be(att->atttypid));
			cols->usable = false;
			break;
		}
		*atts[role] = static_cast<int>(attnum);
	}
	if (!cols->usable)
	{
		static WarnedAt warned;

		if (!FirstInStatement(&warned, trig->tg_relation))
			return nullptr;
		ereport(WARNING,
				(errmsg("livenotify source \"%s\" cannot read table \"%s\": %s; rows not "
						"captured",
						tg->tgargs[0], RelationGetRelationName(trig->tg_relation), cols->problem),
				 errhint("Run ALTER EXTENSION livenotify UPDATE.")));
		return nullptr;
	}
	return cols;
}

const SourceColumns *
Columns(TriggerData *trig, SourceColumns *legacy)
{
	const char *source = trig->tg_trigger->tgargs[0];
	const SourceColumns *cols;

	if (trig->tg_trigger->tgnargs > 1)
	{
		int nargs = trig->tg_trigger->tgnargs;
		bool insert = TRIGGER_FIRED_BY_INSERT(trig->tg_event);

		/*
		 * Only while the extension is still at 0.1 (source_tables without
		 * names): the update recreates every trigger register() made, so a
		 * trigger of this shape at 0.2 was made by hand.
		 */
		if (!(insert ? nargs == 4 || nargs == 5 : nargs == 3) || !SchemaIsLegacy())
			ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
							errmsg("trigger \"%s\" on table \"%s\" has %d arguments; a livenotify "
								   "trigger has one, its source's name",
								   trig->tg_trigger->tgname,
								   RelationGetRelationName(trig->tg_relation), nargs),
							errhint("Install the triggers with livenotify.register().")));
		return LegacyColumns(trig, legacy);
	}
	cols = SourceResolve(trig->tg_relation, source, trig->tg_trigger->tgname);

	if (!cols->usable)
	{
		SourceWarnOnce(trig->tg_relation, source, cols);
		return nullptr;
	}
	return cols;
}

/* The id column's value (smallint, integer or bigint: sources.cpp checked), or -1 if NULL. */
int64
ColumnId(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool isnull;
	Datum value = heap_getattr(tuple, attnum, desc, &isnull);

	if (isnull)
		return -1;
	switch (TupleDescAttr(desc, attnum - 1)->atttypid)
	{
		case INT2OID:
			return DatumGetInt16(value);
		case INT4OID:
			return DatumGetInt32(value);
		default:
			return DatumGetInt64(value);
	}
}

/*
 * Does the row count as unread, as livenotify.unread_counts() counts: its
 * read column is false.  NULL is neither read nor unread and is not counted.
 */
bool
RowUnread(HeapTuple tuple, TupleDesc desc, int read_att)
{
	bool isnull;
	Datum value = heap_getattr(tuple, read_att, desc, &isnull);

	return !isnull && !DatumGetBool(value);
}

/*
 * Queue an unread_count for the user (once per transaction, pending.cpp).
 * A NULL user key is counted for nobody; one too long to queue is not
 * delivered either (capture_insert warns about it).
 */
void
QueueUnreadCount(const char *source, const char *user)
{
	if (user == nullptr || strlen(user) > RingMaxPayload())
		return;
	PendingAddUnreadCount(source, strlen(source), user, strlen(user));
}

/*
 * The text form of a column, or NULL: its value as ::text prints it.  For
 * char(n) that is without the trailing blanks bpcharout keeps (the
 * bpchar -> text cast, rtrim1 in varchar.c, drops them), so a char(n) user
 * key is the same string in live entries, catch-up and counts.
 */
char *
ColumnText(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool isnull;
	Datum value = heap_getattr(tuple, attnum, desc, &isnull);
	Oid typid = TupleDescAttr(desc, attnum - 1)->atttypid;
	Oid typoutput;
	bool typvarlena;
	char *out;

	if (isnull)
		return nullptr;
	getTypeOutputInfo(typid, &typoutput, &typvarlena);
	out = OidOutputFunctionCall(typoutput, value);
	if (typid == BPCHAROID)
	{
		size_t n = strlen(out);

		while (n > 0 && out[n - 1] == ' ')
			out[--n] = '\0';
	}
	return out;
}

/* Does the row's type pass the rules?  Counts it as filtered if not. */
bool
TypeDelivered(const char *source, HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool isnull;
	Datum value = heap_getattr(tuple, attnum, desc, &isnull);
	const char *type = "";
	size_t type_len = 0;

	if (!isnull)
	{
		text *t = DatumGetTextPP(value);

		type = VARDATA_ANY(t);
		type_len = VARSIZE_ANY_EXHDR(t);
		/* char(n) pads with blanks; rules name the type without them. */
		if (TupleDescAttr(desc, attnum - 1)->atttypid == BPCHAROID)
			while (type_len > 0 && type[type_len - 1] == ' ')
				type_len--;
	}
	if (RulesDeliver(source, type, type_len))
		return true;
	RingCountFiltered();
	return false;
}

/*
 * Queue a committed-at-commit 'notification' for an inserted row.
 */
Datum
capture_insert_cpp(PG_FUNCTION_ARGS)
{
	TriggerData *trig =
		CheckTrigger(fcinfo, "livenotify.capture_insert", 1, 5, FIRED_BY_ROW_INSERT);
	const char *source = trig->tg_trigger->tgargs[0];
	Relation rel = trig->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple tuple = trig->tg_trigtuple;
	const SourceColumns *cols;
	SourceColumns legacy;
	char *user;
	const char *payload;
	size_t payload_len;
	int read_att;
	uint16 flags = 0;

	RequireRing();
	if (!guc_enabled)
		return PointerGetDatum(nullptr);
	if ((cols = Columns(trig, &legacy)) == nullptr)
		return PointerGetDatum(nullptr);
	read_att = cols->read_att;

	/*
	 * A row that left another partition of the source in this statement
	 * (moves.cpp): the client has it already.  Its new user's count may
	 * have changed (the old user's was queued by the delete side).
	 */
	if (rel->rd_rel->relispartition && MoveConsume(source, ColumnId(tuple, desc, cols->id_att)))
	{
		if (read_att != 0 && RowUnread(tuple, desc, read_att))
			QueueUnreadCount(source, ColumnText(tuple, desc, cols->user_att));
		return PointerGetDatum(nullptr);
	}

	if (!TypeDelivered(source, tuple, desc, cols->type_att))
	{
		/*
		 * No notification, but unread_counts() counts the row all the same:
		 * the user's tabs need the new count.
		 */
		if (read_att != 0 && RowUnread(tuple, desc, read_att))
			QueueUnreadCount(source, ColumnText(tuple, desc, cols->user_att));
		return PointerGetDatum(nullptr);
	}

	user = ColumnText(tuple, desc, cols->user_att);
	if (user == nullptr)
	{
		/* Nobody to deliver to. */
		RingCountFiltered();
		return PointerGetDatum(nullptr);
	}

	payload = SerializeRow(rel, tuple, &payload_len);

	/*
	 * Too big for the queue: send a stub the client can fetch by id.  The
	 * INSERT itself never fails because of livenotify.
	 */
	if (payload_len > RingMaxPayload())
	{
		char *id = ColumnText(tuple, desc, cols->id_att);

		payload = psprintf("{\"id\":%s,\"truncated\":true}", id ? id : "null");
		payload_len = strlen(payload);
		RingCountOversize();
	}
	if (strlen(user) > RingMaxPayload())
	{
		static WarnedAt warned;

		RingCountOversize();
		if (!FirstInStatement(&warned, rel))
			return PointerGetDatum(nullptr);
		ereport(WARNING,
				(errmsg("livenotify: user key of %zu bytes in \"%s\" is too long to queue; "
						"rows not delivered",
						strlen(user), source),
				 errdetail("Said once per statement; every such row is counted as oversize.")));
		return PointerGetDatum(nullptr);
	}

	/* The stub keeps the flags: the row counts the same whatever its size. */
	if (read_att != 0)
		flags = ENTRY_READ_STATE | (RowUnread(tuple, desc, read_att) ? ENTRY_UNREAD : 0);

	PendingAdd(PendingMakeEntry(source, strlen(source), KIND_NOTIFICATION,
								sizeof(KIND_NOTIFICATION) - 1, user, strlen(user), payload,
								payload_len, flags));
	return PointerGetDatum(nullptr);
}

/*
 * An UPDATE (with a read column) or a DELETE: queue an unread_count for
 * each user whose count changed, deciding exactly as unread_counts() counts
 * (read column false; NULL is not unread), so that a change that moves no
 * count (another column, read true -> NULL, a read row given to another
 * user) queues nothing.  A DELETE that is half of a move to another
 * partition is remembered for the insert half (moves.cpp).
 */
Datum
capture_read_cpp(PG_FUNCTION_ARGS)
{
	TriggerData *trig =
		CheckTrigger(fcinfo, "livenotify.capture_read", 1, 3, FIRED_BY_ROW_UPDATE_OR_DELETE);
	const char *source = trig->tg_trigger->tgargs[0];
	Relation rel = trig->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple old_row = trig->tg_trigtuple;
	HeapTuple new_row;
	const SourceColumns *cols;
	SourceColumns legacy;
	char *old_user;
	char *new_user;
	bool old_unread;
	bool new_unread;
	int user_att;
	int read_att;

	RequireRing();
	if (!guc_enabled)
		return PointerGetDatum(nullptr);
	if ((cols = Columns(trig, &legacy)) == nullptr)
		return PointerGetDatum(nullptr);
	user_att = cols->user_att;
	read_att = cols->read_att;

	if (TRIGGER_FIRED_BY_DELETE(trig->tg_event))
	{
		if (rel->rd_rel->relispartition && TupleMovedPartitions(old_row))
			MoveRecord(source, ColumnId(old_row, desc, cols->id_att));
		if (read_att != 0 && RowUnread(old_row, desc, read_att))
			QueueUnreadCount(source, ColumnText(old_row, desc, user_att));
		return PointerGetDatum(nullptr);
	}
	if (read_att == 0)
		return PointerGetDatum(nullptr);

	new_row = trig->tg_newtuple;
	old_unread = RowUnread(old_row, desc, read_att);
	new_unread = RowUnread(new_row, desc, read_att);
	if (!old_unread && !new_unread)
		return PointerGetDatum(nullptr); /* counted for nobody before or after */
	old_user = ColumnText(old_row, desc, user_att);
	new_user = ColumnText(new_row, desc, user_att);
	if (old_user != nullptr && new_user != nullptr && strcmp(old_user, new_user) == 0)
	{
		/* Same user: the count moved if the row went from unread to not, or back. */
		if (old_unread != new_unread)
			QueueUnreadCount(source, new_user);
	}
	else
	{
		/* Another user: the old one lost the row, the new one gained it. */
		if (old_unread)
			QueueUnreadCount(source, old_user);
		if (new_unread)
			QueueUnreadCount(source, new_user);
	}
	return PointerGetDatum(nullptr);
}

/*
 * TRUNCATE of the source table: every user's count changed.  One entry
 * with no user key (per source per transaction) says so.
 */
Datum
capture_truncate_cpp(PG_FUNCTION_ARGS)
{
	TriggerData *trig =
		CheckTrigger(fcinfo, "livenotify.capture_truncate", 1, 1, FIRED_BY_TRUNCATE);
	const char *source = trig->tg_trigger->tgargs[0];

	RequireRing();
	if (!guc_enabled)
		return PointerGetDatum(nullptr);
	/*
	 * The name is all this trigger uses; it must be one register() made
	 * (not checkable while the catalog is still 0.1's: that trigger is
	 * register()'s of 0.1, recreated by the update).
	 */
	if (!SchemaIsLegacy())
		(void) SourceResolve(trig->tg_relation, source, trig->tg_trigger->tgname);
	PendingAddUnreadCount(source, strlen(source), nullptr, 0);
	return PointerGetDatum(nullptr);
}

Datum
rules_changed_cpp(PG_FUNCTION_ARGS)
{
	TriggerData *trig;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("livenotify.rules_changed() can only be called as a trigger")));
	trig = reinterpret_cast<TriggerData *>(fcinfo->context);
	/*
	 * No RequireRing(): invalidating is right with or without the ring, and
	 * a DROP TABLE (on_sql_drop deletes from source_tables) or a restore of
	 * the catalog tables must work on a server not configured yet.
	 */
	/* Sent to every backend at commit; this one sees it at the next command. */
	CacheInvalidateRelcache(trig->tg_relation);
	return PointerGetDatum(nullptr);
}

} /* namespace */

LIVENOTIFY_FUNCTION(capture_insert)
LIVENOTIFY_FUNCTION(capture_read)
LIVENOTIFY_FUNCTION(capture_truncate)
LIVENOTIFY_FUNCTION(rules_changed)
