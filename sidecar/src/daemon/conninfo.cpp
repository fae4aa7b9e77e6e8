/*
 * conninfo.cpp: see conninfo.hpp.
 */
#include "conninfo.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

namespace livenotify
{

const std::vector<ConninfoDefault> &
conninfo_defaults()
{
	/*
	 * keepalives_*: an idle session whose peer is gone is found in
	 * 10 + 3 x 5 = 25 s instead of the kernel's 2 h 11 min.
	 * tcp_user_timeout: data sent and not acknowledged for 10 s drops the
	 * connection (a partition while a query is in flight).
	 * connect_timeout: libpq's per-host connect deadline; db.cpp enforces it
	 * for the non-blocking connect (PQconnectPoll does not, see libpq's
	 * "connect_timeout" documentation: only PQconnectdb and friends wait).
	 */
	static const std::vector<ConninfoDefault> defaults = {
		{"keepalives", "1"},	   {"keepalives_idle", "10"},	  {"keepalives_interval", "5"},
		{"keepalives_count", "3"}, {"tcp_user_timeout", "10000"}, {"connect_timeout", "5"},
	};
	return defaults;
}

std::string
ConnParams::get(const std::string &key) const
{
	for (size_t i = 0; i < keys.size(); i++)
		if (keys[i] == key)
			return values[i];
	return "";
}

namespace
{

/* The environment variable libpq reads for a keyword (PQconndefaults), or nullptr. */
std::string
envvar_of(const char *key)
{
	static const std::vector<std::pair<std::string, std::string>> vars = [] {
		std::vector<std::pair<std::string, std::string>> v;
		PQconninfoOption *opts = PQconndefaults();
		if (opts)
		{
			for (PQconninfoOption *o = opts; o->keyword; o++)
				if (o->envvar)
					v.emplace_back(o->keyword, o->envvar);
			PQconninfoFree(opts);
		}
		return v;
	}();
	for (const auto &kv : vars)
		if (kv.first == key)
			return kv.second;
	return "";
}

const char *
default_env(const char *name)
{
	return getenv(name);
}

} // namespace

bool
build_conninfo(const std::string &url, const std::string &application_name, ConnParams *out,
			   std::string *err, const char *(*env)(const char *) )
{
	if (!env)
		env = default_env;
	*out = ConnParams();
	char *errmsg = nullptr;
	PQconninfoOption *opts = PQconninfoParse(url.c_str(), &errmsg);
	if (!opts)
	{
		*err = errmsg ? errmsg : "out of memory";
		while (!err->empty() && (err->back() == '\n' || err->back() == ' '))
			err->pop_back();
		if (errmsg)
			PQfreemem(errmsg);
		return false;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "application_name") != 0)
		{
			out->keys.emplace_back(o->keyword);
			out->values.emplace_back(o->val);
		}
	PQconninfoFree(opts);

	for (const auto &d : conninfo_defaults())
	{
		bool set = false;
		for (const auto &k : out->keys)
			set = set || k == d.key;
		std::string var = envvar_of(d.key);
		if (!var.empty() && env(var.c_str()))
			set = true;
		if (!set)
		{
			out->keys.emplace_back(d.key);
			out->values.emplace_back(d.value);
		}
	}
	out->keys.emplace_back("application_name");
	out->values.emplace_back(application_name);

	/* What db.cpp needs to enforce connect_timeout itself. */
	std::string ct = out->get("connect_timeout");
	if (ct.empty())
	{
		const char *e = env("PGCONNECT_TIMEOUT");
		ct = e ? e : "";
	}
	out->connect_timeout_s = ct.empty() ? 0 : std::max(0, atoi(ct.c_str()));
	/* libpq: a connect_timeout of 1 s is raised to 2 s (fe-connect.c, connectDBComplete). */
	if (out->connect_timeout_s == 1)
		out->connect_timeout_s = 2;
	std::string hosts = out->get("host");
	if (hosts.empty())
		hosts = out->get("hostaddr");
	out->hosts = 1;
	for (char c : hosts)
		if (c == ',')
			out->hosts++;

	/*
	 * Several hosts and no choice made (URL or PGTARGETSESSIONATTRS): libpq
	 * would take the first host that answers, and after a failover that is
	 * often a standby (the old primary back, or a replica listed first),
	 * where livenotify's queue is empty and read() refuses.  read-write makes
	 * libpq skip it and try the next host (fe-connect.c, CONNECTION_CHECK_TARGET).
	 */
	if (out->hosts > 1 && out->get("target_session_attrs").empty() && !env("PGTARGETSESSIONATTRS"))
	{
		out->keys.emplace_back("target_session_attrs");
		out->values.emplace_back("read-write");
	}
	return true;
}

} // namespace livenotify
