/*-------------------------------------------------------------------------
 *
 * horizon.cpp
 *	  SQL-callable functions behind resume cursors: read_horizon() (what the
 *	  last read() of this session covered, inflight.cpp) and origin() (which
 *	  database history ids and xids belong to).
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/xid8.h"
}

#include "guard.hpp"
#include "inflight.hpp"
#include "ring.hpp"

using namespace livenotify;

namespace
{

TupleDesc
ResultDesc(FunctionCallInfo fcinfo, const char *name)
{
	TupleDesc desc;

	if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "%s must return a composite type", name);
	return BlessTupleDesc(desc);
}

/*
 * read_horizon(OUT xmin xid8, OUT xmax xid8): NULLs unless this session's
 * last read() read to the end of the ring.  Then every transaction whose
 * top-level xid is below xmin and that committed entries had them all
 * returned by that read() or an earlier one, and every entry that read()
 * returned belongs to a transaction whose xids are all below xmax.
 */
Datum
read_horizon_cpp(PG_FUNCTION_ARGS)
{
	TupleDesc desc = ResultDesc(fcinfo, "livenotify.read_horizon()");
	ReadHorizon h;
	Datum values[2] = {0, 0};
	bool nulls[2] = {true, true};

	RequireRing();
	h = InflightLastHorizon();
	if (h.valid)
	{
		values[0] = FullTransactionIdGetDatum(FullTransactionIdFromU64(h.xmin));
		values[1] = FullTransactionIdGetDatum(FullTransactionIdFromU64(h.xmax));
		nulls[0] = nulls[1] = false;
	}
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * origin(OUT system_identifier text, OUT timeline integer): a cursor is only
 * meaningful on the same system and timeline.  A standby shares its
 * primary's system identifier; promotion starts a new timeline, and rows
 * the old primary had acknowledged may be missing on it, with their ids and
 * xids given again to new rows.  The identifier is unsigned 64-bit, hence
 * text.  NULL timeline during recovery.
 */
Datum
origin_cpp(PG_FUNCTION_ARGS)
{
	TupleDesc desc = ResultDesc(fcinfo, "livenotify.origin()");
	Datum values[2] = {0, 0};
	bool nulls[2] = {false, false};
	char buf[32];

	snprintf(buf, sizeof(buf), UINT64_FORMAT, GetSystemIdentifier());
	values[0] = CStringGetTextDatum(buf);
	if (RecoveryInProgress())
		nulls[1] = true;
	else
		values[1] = Int32GetDatum(static_cast<int32>(GetWALInsertionTimeLine()));
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

} /* namespace */

LIVENOTIFY_FUNCTION(read_horizon)
LIVENOTIFY_FUNCTION(origin)
