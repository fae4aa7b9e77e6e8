/*
 * conninfo.cpp: see conninfo.hpp.
 */
#include "conninfo.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

namespace livenotify
{

std::optional<std::string>
conninfo_value(const std::string &conninfo, const char *keyword)
{
	/*
	 * PQconninfoParse reads a URI or key=value pairs and fills only what the
	 * string sets (no environment, no service file: fe-connect.c
	 * parse_connection_string with use_defaults = false).
	 */
	char *err = nullptr;
	PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
	if (!opts)
	{
		PQfreemem(err);
		return std::nullopt;
	}
	std::optional<std::string> out;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (std::strcmp(o->keyword, keyword) == 0 && o->val && o->val[0])
			out = o->val;
	PQconninfoFree(opts);
	return out;
}

bool
conninfo_multi_host(const std::string &conninfo)
{
	for (const char *k : {"host", "hostaddr"})
	{
		auto v = conninfo_value(conninfo, k);
		if (v && v->find(',') != std::string::npos)
			return true;
	}
	return false;
}

std::optional<std::string>
default_target_session_attrs(const std::string &conninfo)
{
	if (!conninfo_multi_host(conninfo))
		return std::nullopt;
	if (conninfo_value(conninfo, "target_session_attrs"))
		return std::nullopt;
	/* libpq reads it when neither the URL nor the parameters set it: keep the operator's choice. */
	const char *env = std::getenv("PGTARGETSESSIONATTRS");
	if (env && env[0])
		return std::nullopt;
	return std::string("read-write");
}

} // namespace livenotify
