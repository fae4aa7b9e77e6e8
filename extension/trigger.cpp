/*-------------------------------------------------------------------------
 *
 * trigger.cpp
 *	  The triggers that livenotify.register() installs on a source table.
 *
 *	  livenotify.capture_insert(source, user_attnum, type_attnum, id_attnum
 *								[, read_attnum])
 *		livenotify_capture, AFTER INSERT FOR EACH ROW: apply the type rules,
 *		serialise the row as row_to_json does (serialize.cpp; JSON columns
 *		stay JSON), queue a 'notification'.  With a read column (read_attnum
 *		not 0) the entry also says whether the row counts as unread, and a
 *		row of a skipped type that counts as unread queues its user's
 *		'unread_count' instead.
 *
 *	  livenotify.capture_read(source, user_attnum, read_attnum)
 *		livenotify_read, AFTER UPDATE FOR EACH ROW WHEN (read or user column
 *		changed), and livenotify_delete, AFTER DELETE FOR EACH ROW WHEN (the
 *		row was unread): queue an 'unread_count' for each user whose count
 *		changed, once per user per transaction.
 *
 *	  livenotify.capture_truncate(source)
 *		livenotify_truncate, AFTER TRUNCATE FOR EACH STATEMENT: one
 *		'unread_count' without a user key: every count of the source changed.
 *
 *	  livenotify.rules_changed()
 *		AFTER ... FOR EACH STATEMENT on livenotify.rules: invalidate every
 *		backend's rules cache (see rules.cpp).
 *
 * The unread_count entries cover every committed change to what
 * livenotify.unread_counts() counts (rows of the user whose read column is
 * false), so a reader can keep a cached count exact: the notification of an
 * unread row adds one, everything else says "fetch this count again".
 *
 * Columns travel as trigger arguments by number (validated by register()),
 * so a migration that renames a column changes nothing.  A column dropped
 * later is reported with a WARNING and the row is skipped: the app's INSERT
 * never fails because of livenotify.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include "guard.hpp"
#include "guc.hpp"
#include "pending.hpp"
#include "ring.hpp"
#include "rules.hpp"
#include "serialize.hpp"

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

/* What a column must still be for the trigger to read it. */
enum ColumnType
{
	COLUMN_ANY,	 /* read through its type's output function */
	COLUMN_TEXT, /* text, varchar or char: read as text */
	COLUMN_BOOL, /* boolean (the read column) */
};

/*
 * The column a trigger argument names, by number, so that renaming it is
 * harmless.  A column dropped since registration (or retyped to something
 * the trigger cannot read) must not make the app's INSERT fail: warn, and
 * return 0 so the row is skipped.
 */
int
ResolveColumn(Relation rel, const char *arg, const char *source, const char *role, ColumnType type)
{
	TupleDesc desc = RelationGetDescr(rel);
	long attnum = strtol(arg, nullptr, 10);
	Form_pg_attribute att;

	if (attnum < 1 || attnum > desc->natts || TupleDescAttr(desc, attnum - 1)->attisdropped)
	{
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("livenotify source \"%s\": the %s column of table \"%s\" was dropped; "
						"row not queued",
						source, role, RelationGetRelationName(rel)),
				 errhint("Unregister the source and register it again.")));
		return 0;
	}
	att = TupleDescAttr(desc, attnum - 1);
	if ((type == COLUMN_TEXT && att->atttypid != TEXTOID && att->atttypid != VARCHAROID &&
		 att->atttypid != BPCHAROID) ||
		(type == COLUMN_BOOL && att->atttypid != BOOLOID))
	{
		ereport(WARNING, (errcode(ERRCODE_DATATYPE_MISMATCH),
						  errmsg("livenotify source \"%s\": the %s column \"%s\" is no longer %s; "
								 "row not queued",
								 source, role, NameStr(att->attname),
								 type == COLUMN_TEXT ? "text" : "boolean"),
						  errhint("Unregister the source and register it again.")));
		return 0;
	}
	return static_cast<int>(attnum);
}

/* Does the trigger have a read column argument (argument argno, not "0")? */
bool
HasReadColumn(const Trigger *tg, int argno)
{
	return tg->tgnargs > argno && strtol(tg->tgargs[argno], nullptr, 10) != 0;
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

/* The text form of a column, or NULL. */
char *
ColumnText(HeapTuple tuple, TupleDesc desc, int attnum)
{
	bool isnull;
	Datum value = heap_getattr(tuple, attnum, desc, &isnull);
	Oid typoutput;
	bool typvarlena;

	if (isnull)
		return nullptr;
	getTypeOutputInfo(TupleDescAttr(desc, attnum - 1)->atttypid, &typoutput, &typvarlena);
	return OidOutputFunctionCall(typoutput, value);
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
		CheckTrigger(fcinfo, "livenotify.capture_insert", 4, 5, FIRED_BY_ROW_INSERT);
	char **args = trig->tg_trigger->tgargs;
	const char *source = args[0];
	Relation rel = trig->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple tuple = trig->tg_trigtuple;
	char *user;
	const char *payload;
	size_t payload_len;
	int user_att;
	int type_att;
	int id_att;
	int read_att = 0;
	uint16 flags = 0;

	RequireRing();
	if (!guc_enabled)
		return PointerGetDatum(nullptr);

	if ((user_att = ResolveColumn(rel, args[1], source, "user", COLUMN_ANY)) == 0 ||
		(type_att = ResolveColumn(rel, args[2], source, "type", COLUMN_TEXT)) == 0 ||
		(id_att = ResolveColumn(rel, args[3], source, "id", COLUMN_ANY)) == 0 ||
		(HasReadColumn(trig->tg_trigger, 4) &&
		 (read_att = ResolveColumn(rel, args[4], source, "read", COLUMN_BOOL)) == 0))
		return PointerGetDatum(nullptr);

	if (!TypeDelivered(source, tuple, desc, type_att))
	{
		/*
		 * No notification, but unread_counts() counts the row all the same:
		 * the user's tabs need the new count.
		 */
		if (read_att != 0 && RowUnread(tuple, desc, read_att))
			QueueUnreadCount(source, ColumnText(tuple, desc, user_att));
		return PointerGetDatum(nullptr);
	}

	user = ColumnText(tuple, desc, user_att);
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
		payload = SerializeStub(rel, tuple, id_att, RingMaxPayload(), &payload_len);
		RingCountOversize();
	}
	if (strlen(user) > RingMaxPayload())
	{
		ereport(WARNING,
				(errmsg("livenotify: user key of %zu bytes in \"%s\" is too long to queue; "
						"row not delivered",
						strlen(user), source)));
		RingCountOversize();
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
 * An UPDATE of the read or user column, or a DELETE of an unread row: queue
 * an unread_count for each user whose count changed.  The WHEN clauses let
 * only candidate rows through; this decides exactly, as unread_counts()
 * counts (read column false; NULL is not unread), so that a change that
 * moves no count (read true -> NULL, a read row given to another user)
 * queues nothing.
 */
Datum
capture_read_cpp(PG_FUNCTION_ARGS)
{
	TriggerData *trig =
		CheckTrigger(fcinfo, "livenotify.capture_read", 3, 3, FIRED_BY_ROW_UPDATE_OR_DELETE);
	char **args = trig->tg_trigger->tgargs;
	const char *source = args[0];
	Relation rel = trig->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	HeapTuple old_row = trig->tg_trigtuple;
	HeapTuple new_row;
	char *old_user;
	char *new_user;
	bool old_unread;
	bool new_unread;
	int user_att;
	int read_att;

	RequireRing();
	if (!guc_enabled)
		return PointerGetDatum(nullptr);

	if ((user_att = ResolveColumn(rel, args[1], source, "user", COLUMN_ANY)) == 0 ||
		(read_att = ResolveColumn(rel, args[2], source, "read", COLUMN_BOOL)) == 0)
		return PointerGetDatum(nullptr);

	old_unread = RowUnread(old_row, desc, read_att);
	old_user = ColumnText(old_row, desc, user_att);
	if (TRIGGER_FIRED_BY_DELETE(trig->tg_event))
	{
		if (old_unread)
			QueueUnreadCount(source, old_user);
		return PointerGetDatum(nullptr);
	}

	new_row = trig->tg_newtuple;
	new_unread = RowUnread(new_row, desc, read_att);
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
	RequireRing();
	/* Sent to every backend at commit; this one sees it at the next command. */
	CacheInvalidateRelcache(trig->tg_relation);
	return PointerGetDatum(nullptr);
}

} /* namespace */

LIVENOTIFY_FUNCTION(capture_insert)
LIVENOTIFY_FUNCTION(capture_read)
LIVENOTIFY_FUNCTION(capture_truncate)
LIVENOTIFY_FUNCTION(rules_changed)
