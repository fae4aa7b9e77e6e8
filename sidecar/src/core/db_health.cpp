/*
 * db_health.cpp: see db_health.hpp.
 */
#include "db_health.hpp"

namespace livenotify
{

bool
persistent_sqlstate(std::string_view s)
{
	if (s.size() != 5)
		return false;
	/* Class 28: invalid authorization specification (28000, 28P01 bad password). */
	if (s.compare(0, 2, "28") == 0)
		return true;
	static const char *const kPersistent[] = {
		"42501", /* insufficient_privilege: EXECUTE on read() or SELECT on the table revoked */
		"42883", /* undefined_function: the extension is missing or older than the daemon */
		"42P01", /* undefined_table: livenotify.sources or the source table is gone */
		"3F000", /* invalid_schema_name: no livenotify schema in this database */
		"3D000", /* invalid_catalog_name: the database does not exist */
		"42704", /* undefined_object */
	};
	for (const char *p : kPersistent)
		if (s == p)
			return true;
	return false;
}

std::string
failure_summary(DbFailure kind, std::string_view sqlstate)
{
	std::string s;
	switch (kind)
	{
		case DbFailure::Connect:
			s = "connect failed";
			break;
		case DbFailure::TimedOut:
			s = "no answer by the deadline";
			break;
		case DbFailure::ConnLost:
			s = "connection lost";
			break;
		case DbFailure::Error:
			s = "error";
			break;
		case DbFailure::Standby:
			s = "connected to a standby (in recovery)";
			break;
	}
	if (!sqlstate.empty())
		s += " (SQLSTATE " + std::string(sqlstate) +
			 (persistent_sqlstate(sqlstate) ? ", persistent" : "") + ")";
	return s + ", see the log";
}

HealthVerdict
evaluate_health(const HealthInputs &in)
{
	HealthVerdict v;
	auto with_error = [](std::string msg, const std::string &err) {
		if (!err.empty())
			msg += ": " + err;
		return msg + "\n";
	};
	if (in.stopping)
	{
		v.body = "stopping\n";
		return v;
	}
	if (!in.reader_up)
	{
		v.body = with_error("database unreachable (reader)", in.reader_error);
		return v;
	}
	if (!in.read_age || *in.read_age > in.max_read_age)
	{
		v.body = "database read stale: last successful read " +
				 (in.read_age ? std::to_string(in.read_age->count()) + " ms ago" : "never") +
				 " (max_read_age_ms " + std::to_string(in.max_read_age.count()) + ")\n";
		return v;
	}
	if (in.workers > 0 && in.workers_failing >= in.workers)
	{
		v.body =
			with_error("database workers failing: " + std::to_string(in.workers_failing) + " of " +
						   std::to_string(in.workers) + " catch-up connections failing",
					   in.worker_error);
		return v;
	}
	v.ok = true;
	v.body = "ok\n";
	return v;
}

} // namespace livenotify
