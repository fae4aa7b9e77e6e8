/*
 * primary.cpp: see primary.hpp.
 */
#include "primary.hpp"

namespace livenotify
{

ServerRole
server_role(PgConn &conn, QueryResult *failed)
{
	/*
	 * pg_is_in_recovery() is true from startup until promotion ends
	 * (xlogfuncs.c, RecoveryInProgress()); executable by PUBLIC.
	 */
	QueryResult r = conn.query("SELECT pg_catalog.pg_is_in_recovery()", {});
	if (!r.ok() || r.rows() != 1 || r.is_null(0, 0))
	{
		if (r.ok())
		{
			r.status = DbStatus::Error;
			r.error = "pg_is_in_recovery() returned no row";
		}
		*failed = std::move(r);
		return ServerRole::Unknown;
	}
	return r.text(0, 0) == "t" ? ServerRole::Standby : ServerRole::Primary;
}

} // namespace livenotify
