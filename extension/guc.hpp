/*-------------------------------------------------------------------------
 *
 * guc.hpp
 *	  livenotify.* configuration parameters.
 *
 *-------------------------------------------------------------------------
 */
#pragma once

namespace livenotify
{

/* livenotify.ring_size, in kB (postmaster: the ring is sized at startup) */
extern int guc_ring_size_kb;

/* livenotify.max_readers: concurrent read() sessions (postmaster) */
extern int guc_max_readers;

/* livenotify.max_payload, in bytes: larger rows become a stub */
extern int guc_max_payload;

/*
 * livenotify.max_pending, in bytes: memory one transaction's pending entries
 * may take before they collapse into overflow markers (pending.cpp)
 */
extern int guc_max_pending;

/*
 * livenotify.reader_idle_timeout, in ms (sighup): a reader that has not
 * called read() for this long no longer makes overwritten entries count as
 * lost in the stats (ring.cpp).
 */
extern int guc_reader_idle_timeout_ms;

/* livenotify.enabled: capture switch for the session */
extern bool guc_enabled;

void DefineGucs();

} /* namespace livenotify */
