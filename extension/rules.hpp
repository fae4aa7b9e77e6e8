/*-------------------------------------------------------------------------
 *
 * rules.hpp
 *	  Per-type delivery rules (livenotify.rules), cached per backend.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

extern "C"
{
#include "postgres.h"
}

namespace livenotify
{

/* Called from _PG_init. */
void InitRules();

/*
 * Whether rows of this type from this source are delivered.  Answers from
 * the backend's cache; reloads it (one scan) after livenotify.rules
 * changed.  A type without a rule follows the source's '*' rule, else is
 * delivered.
 */
bool RulesDeliver(const char *source, const char *type, size_t type_len);

/*
 * Forget the cache.  Runs from the relcache invalidation that the
 * statement trigger on livenotify.rules sends, in every backend.
 */
void RulesInvalidate();

} /* namespace livenotify */
