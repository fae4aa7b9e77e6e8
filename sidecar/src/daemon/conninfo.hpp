/*
 * conninfo.hpp: connection parameters livenotifyd adds to the configured
 * database_url, decided from what the URL itself says.
 *
 * The URL is parsed with libpq's own parser (PQconninfoParse), so a URI and
 * key=value pairs are read exactly as PQconnectStartParams will read them.
 * Nothing here connects.
 *
 * Thread: any (pure functions; getenv only).
 */
#pragma once

#include <optional>
#include <string>

namespace livenotify
{

/* The value of keyword in conninfo; nullopt when unset, empty or unparsable. */
std::optional<std::string> conninfo_value(const std::string &conninfo, const char *keyword);

/* True when conninfo names more than one host (a comma in host or hostaddr). */
bool conninfo_multi_host(const std::string &conninfo);

/*
 * target_session_attrs to pass ahead of the URL (so the URL can override it):
 * "read-write" for a multi-host URL that sets no target_session_attrs itself
 * (and no PGTARGETSESSIONATTRS in the environment); nullopt otherwise.
 * Without it libpq takes the first host that answers, and after a failover
 * that is often the old primary restarted as a standby, where livenotify's
 * queue is empty and read() refuses (the daemon would stay away for good).
 */
std::optional<std::string> default_target_session_attrs(const std::string &conninfo);

} // namespace livenotify
