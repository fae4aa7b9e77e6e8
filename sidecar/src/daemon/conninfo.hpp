/*
 * conninfo.hpp: the connection parameters every database session uses.
 *
 * The configured database_url (a URI or key=value pairs) is parsed with
 * PQconninfoParse and completed with the defaults below for every key that
 * neither the URL nor its environment variable (PGCONNECT_TIMEOUT, ...) sets.
 * Without them a silent partition or a server that went away without a FIN
 * leaves the session ESTABLISHED for hours (Linux keepalive defaults:
 * 2 h idle), and a connect to an address that drops SYNs waits for the
 * kernel's SYN retries.  The read deadline in db.cpp catches a hung read()
 * anyway; these also cover idle worker sessions and the connect itself.
 *
 * One table, so that a default is added in one place.  One default depends
 * on the URL: a URL with several hosts that sets no target_session_attrs
 * (nor PGTARGETSESSIONATTRS) gets target_session_attrs=read-write, so that
 * libpq skips standbys (primary.hpp refuses them after connect anyway).
 *
 * Thread: any (no shared state).
 */
#pragma once

#include <string>
#include <vector>

namespace livenotify
{

struct ConninfoDefault
{
	const char *key;
	const char *value;
};

/* The defaults (libpq keyword, value); see conninfo.cpp for why each. */
const std::vector<ConninfoDefault> &conninfo_defaults();

struct ConnParams
{
	/* Keyword/value pairs for PQconnectStartParams(keys, values, expand_dbname = 0). */
	std::vector<std::string> keys;
	std::vector<std::string> values;
	/* Effective connect_timeout in seconds (0: none) and the number of hosts tried. */
	int connect_timeout_s = 0;
	int hosts = 1;

	/* The value of a keyword, or "" when absent. */
	std::string get(const std::string &key) const;
};

/*
 * Parse url, add the defaults it lacks, set application_name (always ours:
 * pg_stat_activity tells the reader from the workers).  False with *err (the
 * libpq message) when url does not parse.  env looks up an environment
 * variable (getenv by default; tests pass their own).
 */
bool build_conninfo(const std::string &url, const std::string &application_name, ConnParams *out,
					std::string *err, const char *(*env)(const char *) = nullptr);

} // namespace livenotify
