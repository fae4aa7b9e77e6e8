/*-------------------------------------------------------------------------
 *
 * livenotify.cpp
 *	  Module entry point.
 *
 * The ring lives in shared memory allocated at server start, so the library
 * must be in shared_preload_libraries.  Loaded any other way (a function
 * call in a session) it installs nothing, and every function raises an
 * ERROR saying how to fix it (RequireRing).  CREATE EXTENSION still works,
 * so a dump restores onto a server that is not configured yet.
 *
 *-------------------------------------------------------------------------
 */
extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

#include "guc.hpp"
#include "inflight.hpp"
#include "pending.hpp"
#include "ring.hpp"
#include "rules.hpp"
#include "serialize.hpp"
#include "sources.hpp"

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	livenotify::DefineGucs();
	livenotify::InitRing();
	livenotify::InitInflight();
	livenotify::InitPending();
	livenotify::InitRules();
	livenotify::InitSerialize();
	livenotify::InitSources();
}
