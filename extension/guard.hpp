/*-------------------------------------------------------------------------
 *
 * guard.hpp
 *	  The boundary between PostgreSQL's C world and our C++.
 *
 * Two rules keep the two error mechanisms apart (see pg_duckdb's
 * cpp_wrapper.hpp for the model):
 *
 *	1. No C++ exception may unwind into a PostgreSQL frame: the executor
 *	   would be left in an undefined state.  Every SQL-callable function is
 *	   declared with LIVENOTIFY_FUNCTION, which runs the body inside a
 *	   catch-all and turns an exception into ereport(ERROR) *after* the catch
 *	   block has ended, so the exception object is already destroyed when
 *	   longjmp runs.
 *
 *	2. No ereport(ERROR) may longjmp over a C++ frame with live destructors:
 *	   they would never run.  The bodies below therefore keep only trivially
 *	   destructible locals (PostgreSQL-style: palloc, plain structs, pointers)
 *	   in any frame that calls into PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"

#include "fmgr.h"
}

#include <exception>
#include <new>

namespace livenotify
{

/*
 * Run a C++ body for a SQL-callable function.  The message is copied out of
 * the exception inside the handler; the ERROR is raised after it.
 */
template <typename Body>
inline Datum
InvokeGuarded(Body body, FunctionCallInfo fcinfo, const char *funcname)
{
	char message[256];

	message[0] = '\0';
	try
	{
		return body(fcinfo);
	}
	catch (const std::bad_alloc &)
	{
		strlcpy(message, "out of memory", sizeof(message));
	}
	catch (const std::exception &e)
	{
		strlcpy(message, e.what(), sizeof(message));
	}
	catch (...)
	{
		strlcpy(message, "unknown C++ exception", sizeof(message));
	}
	ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
					errmsg("livenotify: %s failed: %s", funcname, message)));
	pg_unreachable();
}

} /* namespace livenotify */

/*
 * Declare the SQL-callable function livenotify_NAME, whose body, NAME_cpp,
 * is defined above the macro.  The prefix keeps the exported C symbols
 * (what CREATE FUNCTION ... LANGUAGE C finds) clear of libc's read/send.
 */
#define LIVENOTIFY_FUNCTION(name)                                                                  \
	extern "C"                                                                                     \
	{                                                                                              \
	PG_FUNCTION_INFO_V1(livenotify_##name);                                                        \
	PGDLLEXPORT Datum livenotify_##name(PG_FUNCTION_ARGS);                                         \
	}                                                                                              \
	Datum livenotify_##name(PG_FUNCTION_ARGS)                                                      \
	{                                                                                              \
		return livenotify::InvokeGuarded(name##_cpp, fcinfo, "livenotify." #name);                 \
	}
