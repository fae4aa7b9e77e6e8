/*
 * primary.hpp: is the server a session landed on the primary?
 *
 * livenotify's queue lives in the primary's shared memory: on a hot standby
 * the ring is empty and read() refuses (extension/), and catch-up or counts
 * read there lag the primary.  Every database thread asks right after it
 * connects (and the reader again when a read fails), so a daemon pointed at
 * a standby, or moved to one by a multi-host URL, says so and keeps retrying
 * instead of looking connected.
 *
 * Thread: the thread owning the PgConn.
 */
#pragma once

#include "db.hpp"

#include <string>

namespace livenotify
{

enum class ServerRole
{
	Primary,
	Standby, /* pg_is_in_recovery(): a hot standby, or a server still recovering */
	Unknown	 /* the question failed (*failed) */
};

/* The log text every thread uses for a standby. */
inline constexpr const char *kStandbyError =
	"connected to a standby (in recovery); livenotifyd needs the primary";

/* pg_is_in_recovery() on this session; Unknown with the failed call in *failed. */
ServerRole server_role(PgConn &conn, QueryResult *failed);

} // namespace livenotify
