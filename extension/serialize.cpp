/*-------------------------------------------------------------------------
 *
 * serialize.cpp
 *	  A captured row as JSON, byte for byte what row_to_json() returns.
 *
 * Clients compare a payload with row_to_json() of the row, and catchup()
 * sends rows it renders with row_to_json(), so the bytes must be the same.
 * Calling row_to_json() itself was the largest cost of the capture trigger
 * that is ours to cut: per row it copies the tuple, looks up the row type's
 * descriptor, fetches each column with heap_getattr(), and works out each
 * column type's JSON category and output function from the syscache.  Here
 * that work is done once per table and backend: a shape per relation OID
 * (in CacheMemoryContext) holds each column's key, escaped and with its
 * comma, how its value is written and its output function; a row is then
 * one heap_deform_tuple() and appends to one buffer.
 *
 * The value rules are those of PostgreSQL 15's json.c (json_categorize_type,
 * datum_to_json, composite_to_json): domains are seen through; bool, the
 * numbers, date/timestamp/timestamptz, json and jsonb are written as
 * datum_to_json writes them; an array or composite column goes through
 * array_to_json() / row_to_json() of the column, the very code json.c runs
 * for it; any other type is its output text, escaped as escape_json() does.
 * json.c calls a cast to json for a non-built-in type that has one: such a
 * table is sent through row_to_json() whole, as before (rare, and the cast
 * is user code).
 *
 * A relcache callback forgets a table's shape (ALTER TABLE ADD, DROP,
 * RENAME or ALTER COLUMN ... TYPE; InvalidOid: every table), a pg_cast
 * syscache callback forgets every shape (a cast to json created or dropped).
 * The callbacks only mark; the next row rebuilds.  A replaced shape is
 * handed to the transaction's memory, not freed: a caller up the stack may
 * still be reading it (an array's element cast is user code that may insert
 * into another captured table).
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#include "serialize.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace livenotify
{

namespace
{

/*
 * How a column's value is written: datum_to_json's categories, with those
 * we write without calling the output function split out.
 */
enum ValueKind
{
	VALUE_DROPPED,	   /* a dropped column: no key, no value */
	VALUE_BOOL,		   /* true, false */
	VALUE_INT2,		   /* the digits int2out writes */
	VALUE_INT4,		   /* ... int4out */
	VALUE_INT8,		   /* ... int8out */
	VALUE_NUMBER,	   /* float4/8, numeric: output text, quoted if not a JSON number */
	VALUE_DATE,		   /* JsonEncodeDateTime, quoted */
	VALUE_TIMESTAMP,   /* ditto */
	VALUE_TIMESTAMPTZ, /* ditto */
	VALUE_JSON,		   /* the text as it is */
	VALUE_JSONB,	   /* its text form */
	VALUE_TEXT,		   /* text, varchar, char(n): the string, escaped */
	VALUE_ARRAY,	   /* array_to_json() */
	VALUE_COMPOSITE,   /* row_to_json() */
	VALUE_OTHER,	   /* output text, escaped */
};

struct Column
{
	const char *key; /* "name": with a leading comma after the first column */
	int key_len;
	ValueKind kind;
	FmgrInfo output; /* VALUE_NUMBER and VALUE_OTHER */
};

struct Shape
{
	MemoryContext context; /* holds this struct, its columns and their keys */
	int natts;			   /* of the descriptor it was built from, dropped included */
	bool whole_row;		   /* a column only row_to_json() can write */
	int keys_len;
	Column *columns;
};

struct ShapeEntry
{
	Oid relid; /* hash key */
	bool valid;
	Shape *shape; /* NULL until built */
};

MemoryContext shapes_context = nullptr;
HTAB *shapes = nullptr;
bool shapes_stale = false; /* some entry is not valid */

void
InvalidateShapes(Oid relid)
{
	HASH_SEQ_STATUS status;
	ShapeEntry *entry;

	if (shapes == nullptr)
		return;
	if (OidIsValid(relid))
	{
		entry = static_cast<ShapeEntry *>(hash_search(shapes, &relid, HASH_FIND, nullptr));
		if (entry != nullptr)
		{
			entry->valid = false;
			shapes_stale = true;
		}
		return;
	}
	hash_seq_init(&status, shapes);
	while ((entry = static_cast<ShapeEntry *>(hash_seq_search(&status))) != nullptr)
		entry->valid = false;
	shapes_stale = true;
}

void
RelcacheCallback(Datum arg, Oid relid)
{
	InvalidateShapes(relid);
}

void
CastCallback(Datum arg, int cacheid, uint32 hashvalue)
{
	InvalidateShapes(InvalidOid);
}

/*
 * Leave a shape to the transaction's memory: freed at its end, still
 * readable by any caller that holds it until then.
 */
void
RetireShape(Shape *shape)
{
	MemoryContextSetParent(shape->context, TopTransactionContext);
}

/*
 * Drop the entries marked by the callbacks, so that the shapes of dropped
 * tables do not pile up.  Not from the callbacks themselves: they may run
 * while a shape is being built or read.
 */
void
SweepShapes()
{
	HASH_SEQ_STATUS status;
	ShapeEntry *entry;

	hash_seq_init(&status, shapes);
	while ((entry = static_cast<ShapeEntry *>(hash_seq_search(&status))) != nullptr)
	{
		if (entry->valid)
			continue;
		if (entry->shape != nullptr)
			RetireShape(entry->shape);
		/* Removing the entry just returned is allowed during a scan (dynahash.c). */
		hash_search(shapes, &entry->relid, HASH_REMOVE, nullptr);
	}
	shapes_stale = false;
}

/*
 * Decide how a column of type typid is written, as json_categorize_type()
 * does; fill in its output function if it needs one.  False if only
 * row_to_json() can write it (a non-built-in type with a cast to json).
 */
bool
ClassifyColumn(Oid typid, Column *col, MemoryContext context)
{
	Oid base = getBaseType(typid);
	Oid castfunc;
	Oid output;
	bool varlena;

	switch (base)
	{
		case BOOLOID:
			col->kind = VALUE_BOOL;
			return true;
		case INT2OID:
			col->kind = VALUE_INT2;
			return true;
		case INT4OID:
			col->kind = VALUE_INT4;
			return true;
		case INT8OID:
			col->kind = VALUE_INT8;
			return true;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			col->kind = VALUE_NUMBER;
			break;
		case DATEOID:
			col->kind = VALUE_DATE;
			return true;
		case TIMESTAMPOID:
			col->kind = VALUE_TIMESTAMP;
			return true;
		case TIMESTAMPTZOID:
			col->kind = VALUE_TIMESTAMPTZ;
			return true;
		case JSONOID:
			col->kind = VALUE_JSON;
			return true;
		case JSONBOID:
			col->kind = VALUE_JSONB;
			return true;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			/* json.c: "other"; their output functions return the stored string. */
			col->kind = VALUE_TEXT;
			return true;
		default:
			if (OidIsValid(get_element_type(base)) || base == ANYARRAYOID ||
				base == ANYCOMPATIBLEARRAYOID || base == RECORDARRAYOID)
			{
				col->kind = VALUE_ARRAY;
				return true;
			}
			if (type_is_rowtype(base))
			{
				col->kind = VALUE_COMPOSITE;
				return true;
			}
			if (base >= FirstNormalObjectId &&
				find_coercion_pathway(JSONOID, base, COERCION_EXPLICIT, &castfunc) ==
					COERCION_PATH_FUNC &&
				OidIsValid(castfunc))
				return false;
			col->kind = VALUE_OTHER;
			break;
	}
	getTypeOutputInfo(base, &output, &varlena);
	fmgr_info_cxt(output, &col->output, context);
	return true;
}

/*
 * Build the shape of rel.  Its memory hangs off the current context until
 * it is complete, so that an ERROR half-way frees it with the row's memory.
 */
Shape *
BuildShape(Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	MemoryContext context;
	Shape *shape;
	StringInfoData key;
	bool first = true;

	context =
		AllocSetContextCreate(CurrentMemoryContext, "livenotify row shape", ALLOCSET_SMALL_SIZES);
	MemoryContextCopyAndSetIdentifier(context, RelationGetRelationName(rel));
	shape = static_cast<Shape *>(MemoryContextAllocZero(context, sizeof(Shape)));
	shape->context = context;
	shape->natts = desc->natts;
	shape->columns = static_cast<Column *>(
		MemoryContextAllocZero(context, sizeof(Column) * Max(desc->natts, 1)));

	initStringInfo(&key);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Column *col = &shape->columns[i];
		char *copy;

		if (att->attisdropped)
		{
			col->kind = VALUE_DROPPED;
			continue;
		}
		/* composite_to_json: a comma between columns, the name as escape_json writes it. */
		resetStringInfo(&key);
		if (!first)
			appendStringInfoChar(&key, ',');
		first = false;
		escape_json(&key, NameStr(att->attname));
		appendStringInfoChar(&key, ':');
		copy = static_cast<char *>(MemoryContextAlloc(context, key.len + 1));
		memcpy(copy, key.data, key.len + 1);
		col->key = copy;
		col->key_len = key.len;
		shape->keys_len += key.len;

		if (!ClassifyColumn(att->atttypid, col, context))
			shape->whole_row = true;
	}
	pfree(key.data);

	MemoryContextSetParent(context, shapes_context);
	return shape;
}

/* The shape of rel, built on first use and after an invalidation. */
Shape *
LookupShape(Relation rel)
{
	Oid relid = RelationGetRelid(rel);
	ShapeEntry *entry;
	HASHCTL ctl;
	bool found;

	if (shapes == nullptr)
	{
		shapes_context = AllocSetContextCreate(CacheMemoryContext, "livenotify row shapes",
											   ALLOCSET_SMALL_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ShapeEntry);
		ctl.hcxt = shapes_context;
		shapes =
			hash_create("livenotify row shapes", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (shapes_stale)
		SweepShapes();

	entry = static_cast<ShapeEntry *>(hash_search(shapes, &relid, HASH_ENTER, &found));
	if (!found)
	{
		entry->valid = false;
		entry->shape = nullptr;
	}
	if (entry->valid && entry->shape != nullptr &&
		entry->shape->natts == RelationGetDescr(rel)->natts)
		return entry->shape;

	if (entry->shape != nullptr)
	{
		RetireShape(entry->shape);
		entry->shape = nullptr;
	}
	/*
	 * Valid before building: the catalog lookups may process invalidations,
	 * and one that arrives meanwhile clears the flag, so the next row builds
	 * again.  (No callback removes entries, so entry stays put.)
	 */
	entry->valid = true;
	entry->shape = BuildShape(rel);
	return entry->shape;
}

/*
 * The first byte at or after p, before end, that escape_json() does not copy
 * as it is: a control character (NUL included), '"' or '\\'.  Row values are
 * mostly plain text, and this scan is most of what serialising them costs
 * (callgrind, bench/write-cpu.sh), so x86-64 tests 16 bytes at a time, as
 * PostgreSQL 17's escape_json() does with port/simd.h.  Bytes >= 0x80 (UTF-8)
 * are plain: the compares are unsigned.
 */
inline const char *
SkipPlainBytes(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i last_control = _mm_set1_epi8(0x1f);
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i backslash = _mm_set1_epi8('\\');

	while (end - p >= 16)
	{
		__m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
		/* max(v, 0x1f) == 0x1f exactly when v <= 0x1f, unsigned. */
		__m128i special =
			_mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, last_control), last_control),
						 _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
		int mask = _mm_movemask_epi8(special);

		if (mask != 0)
			return p + __builtin_ctz(static_cast<unsigned>(mask));
		p += 16;
	}
#endif
	for (; p < end; p++)
	{
		unsigned char c = static_cast<unsigned char>(*p);

		if (c < ' ' || c == '"' || c == '\\')
			break;
	}
	return p;
}

/*
 * escape_json() of a string of known length, byte for byte the same output
 * (it stops at a NUL, too), copying runs of plain bytes at once.
 */
void
AppendJsonString(StringInfo buf, const char *s, size_t len)
{
	const char *end = s + len;
	const char *p = s;

	appendStringInfoCharMacro(buf, '"');
	for (;;)
	{
		const char *run = p;
		unsigned char c;

		p = SkipPlainBytes(p, end);
		if (p > run)
			appendBinaryStringInfo(buf, run, p - run);
		if (p == end)
			break;
		c = static_cast<unsigned char>(*p++);
		switch (c)
		{
			case '\0':
				/* escape_json() stops at a NUL. */
				p = end;
				break;
			case '\b':
				appendBinaryStringInfo(buf, "\\b", 2);
				break;
			case '\f':
				appendBinaryStringInfo(buf, "\\f", 2);
				break;
			case '\n':
				appendBinaryStringInfo(buf, "\\n", 2);
				break;
			case '\r':
				appendBinaryStringInfo(buf, "\\r", 2);
				break;
			case '\t':
				appendBinaryStringInfo(buf, "\\t", 2);
				break;
			case '"':
				appendBinaryStringInfo(buf, "\\\"", 2);
				break;
			case '\\':
				appendBinaryStringInfo(buf, "\\\\", 2);
				break;
			default:
				appendStringInfo(buf, "\\u%04x", static_cast<int>(c));
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

/* A text datum (row_to_json(), array_to_json()) appended as it is. */
void
AppendTextDatum(StringInfo buf, Datum value)
{
	text *t = DatumGetTextPP(value);

	appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* JsonEncodeDateTime() in quotes, as datum_to_json writes datetimes. */
void
AppendDateTime(StringInfo buf, Datum value, Oid typid)
{
	char encoded[MAXDATELEN + 1];

	JsonEncodeDateTime(encoded, value, typid, nullptr);
	appendStringInfoCharMacro(buf, '"');
	appendStringInfoString(buf, encoded);
	appendStringInfoCharMacro(buf, '"');
}

/* datum_to_json() of a non-NULL value (key_scalar false). */
void
AppendValue(StringInfo buf, Column *col, Datum value)
{
	char digits[MAXINT8LEN + 1];
	struct varlena *v;
	Jsonb *jb;
	char *out;
	int n;

	switch (col->kind)
	{
		case VALUE_DROPPED:
			break;
		case VALUE_BOOL:
			if (DatumGetBool(value))
				appendBinaryStringInfo(buf, "true", 4);
			else
				appendBinaryStringInfo(buf, "false", 5);
			break;
		case VALUE_INT2:
			n = pg_itoa(DatumGetInt16(value), digits);
			appendBinaryStringInfo(buf, digits, n);
			break;
		case VALUE_INT4:
			n = pg_ltoa(DatumGetInt32(value), digits);
			appendBinaryStringInfo(buf, digits, n);
			break;
		case VALUE_INT8:
			n = pg_lltoa(DatumGetInt64(value), digits);
			appendBinaryStringInfo(buf, digits, n);
			break;
		case VALUE_NUMBER:
			/* NaN and the infinities are not JSON numbers: quoted. */
			out = OutputFunctionCall(&col->output, value);
			n = strlen(out);
			if (IsValidJsonNumber(out, n))
				appendBinaryStringInfo(buf, out, n);
			else
				AppendJsonString(buf, out, n);
			pfree(out);
			break;
		case VALUE_DATE:
			AppendDateTime(buf, value, DATEOID);
			break;
		case VALUE_TIMESTAMP:
			AppendDateTime(buf, value, TIMESTAMPOID);
			break;
		case VALUE_TIMESTAMPTZ:
			AppendDateTime(buf, value, TIMESTAMPTZOID);
			break;
		case VALUE_JSON:
			/* json_out returns the stored text. */
			v = pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(value)));
			appendBinaryStringInfo(buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
			break;
		case VALUE_JSONB:
			/* jsonb_out, appending where it would start a new string. */
			jb = DatumGetJsonbP(value);
			JsonbToCString(buf, &jb->root, VARSIZE(jb));
			break;
		case VALUE_TEXT:
			v = pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(value)));
			AppendJsonString(buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
			break;
		case VALUE_ARRAY:
			AppendTextDatum(buf, DirectFunctionCall1(array_to_json, value));
			break;
		case VALUE_COMPOSITE:
			AppendTextDatum(buf, DirectFunctionCall1(row_to_json, value));
			break;
		case VALUE_OTHER:
			out = OutputFunctionCall(&col->output, value);
			AppendJsonString(buf, out, strlen(out));
			pfree(out);
			break;
	}
}

} /* namespace */

void
InitSerialize()
{
	CacheRegisterRelcacheCallback(RelcacheCallback, (Datum) 0);
	CacheRegisterSyscacheCallback(CASTSOURCETARGET, CastCallback, (Datum) 0);
}

const char *
SerializeRow(Relation rel, HeapTuple tuple, size_t *len)
{
	TupleDesc desc = RelationGetDescr(rel);
	Shape *shape = LookupShape(rel);
	Column *columns;
	Datum *values;
	bool *nulls;
	StringInfoData buf;
	text *json;

	if (shape->whole_row)
	{
		json =
			DatumGetTextPP(DirectFunctionCall1(row_to_json, heap_copy_tuple_as_datum(tuple, desc)));
		*len = VARSIZE_ANY_EXHDR(json);
		return VARDATA_ANY(json);
	}

	/*
	 * Only the columns pointer from here: a value's output may run code that
	 * captures another row and replaces shapes (the retired one stays
	 * readable until the end of the transaction).
	 */
	columns = shape->columns;
	values = static_cast<Datum *>(palloc(sizeof(Datum) * desc->natts));
	nulls = static_cast<bool *>(palloc(sizeof(bool) * desc->natts));
	heap_deform_tuple(tuple, desc, values, nulls);

	initStringInfo(&buf);
	enlargeStringInfo(&buf, shape->keys_len + static_cast<int>(tuple->t_len) + 2);
	appendStringInfoCharMacro(&buf, '{');
	for (int i = 0; i < desc->natts; i++)
	{
		Column *col = &columns[i];

		if (col->kind == VALUE_DROPPED)
			continue;
		appendBinaryStringInfo(&buf, col->key, col->key_len);
		if (nulls[i])
			appendBinaryStringInfo(&buf, "null", 4);
		else
			AppendValue(&buf, col, values[i]);
	}
	appendStringInfoCharMacro(&buf, '}');

	pfree(values);
	pfree(nulls);
	*len = buf.len;
	return buf.data;
}

/*
 * The stub of an oversize row.  The id column is registered as an integer,
 * but the table's owner may retype it (ALTER COLUMN ... TYPE text): an
 * integer is written as its digits, anything else as a JSON string, and an
 * id whose stub would exceed max_len (or STUB_MAX_ID bytes) as null, so the
 * stub is always valid JSON and always fits the queue.
 */
const char *
SerializeStub(Relation rel, HeapTuple tuple, int id_att, size_t max_len, size_t *len)
{
	/* Longest id text written; the stub's other bytes are fixed. */
	constexpr size_t STUB_MAX_ID = 256;
	static const char head[] = "{\"id\":";
	static const char tail[] = ",\"truncated\":true}";
	TupleDesc desc = RelationGetDescr(rel);
	bool isnull;
	Datum value = heap_getattr(tuple, id_att, desc, &isnull);
	StringInfoData buf;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, head, sizeof(head) - 1);
	if (!isnull)
	{
		Oid typid = getBaseType(TupleDescAttr(desc, id_att - 1)->atttypid);
		Oid typoutput;
		bool typvarlena;
		char *text;
		size_t text_len;

		getTypeOutputInfo(typid, &typoutput, &typvarlena);
		text = OidOutputFunctionCall(typoutput, value);
		text_len = strlen(text);
		if (text_len <= STUB_MAX_ID)
		{
			if (typid == INT2OID || typid == INT4OID || typid == INT8OID)
				appendBinaryStringInfo(&buf, text, static_cast<int>(text_len));
			else
				AppendJsonString(&buf, text, text_len);
		}
		if (text_len > STUB_MAX_ID || static_cast<size_t>(buf.len) + sizeof(tail) - 1 > max_len)
		{
			buf.len = sizeof(head) - 1;
			buf.data[buf.len] = '\0';
			isnull = true;
		}
	}
	if (isnull)
		appendBinaryStringInfo(&buf, "null", 4);
	appendBinaryStringInfo(&buf, tail, sizeof(tail) - 1);
	*len = buf.len;
	return buf.data;
}

} /* namespace livenotify */
