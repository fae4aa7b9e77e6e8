/*
 * test_conninfo.cpp: the libpq defaults added to database_url (conninfo.hpp),
 * checked by parsing the result again with PQconninfoParse.
 */
#include "conninfo.hpp"

#include <libpq-fe.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

using namespace livenotify;

namespace
{

const char *
no_env(const char *)
{
	return nullptr;
}

const char *
env_connect_timeout(const char *name)
{
	return strcmp(name, "PGCONNECT_TIMEOUT") == 0 ? "7" : nullptr;
}

/* The keyword/value pairs as libpq reads them back (what PQconnectStartParams gets). */
std::map<std::string, std::string>
reparsed(const ConnParams &p)
{
	std::string conninfo;
	for (size_t i = 0; i < p.keys.size(); i++)
	{
		std::string v;
		for (char c : p.values[i])
		{
			if (c == '\'' || c == '\\')
				v += '\\';
			v += c;
		}
		conninfo += p.keys[i] + "='" + v + "' ";
	}
	char *err = nullptr;
	PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
	EXPECT_NE(opts, nullptr) << (err ? err : "");
	std::map<std::string, std::string> out;
	if (!opts)
		return out;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val)
			out[o->keyword] = o->val;
	PQconninfoFree(opts);
	return out;
}

} // namespace

TEST(Conninfo, DefaultsAddedToAnEmptyUrl)
{
	ConnParams p;
	std::string err;
	ASSERT_TRUE(build_conninfo("", "livenotifyd reader", &p, &err, no_env)) << err;
	auto m = reparsed(p);
	EXPECT_EQ(m["keepalives"], "1");
	EXPECT_EQ(m["keepalives_idle"], "10");
	EXPECT_EQ(m["keepalives_interval"], "5");
	EXPECT_EQ(m["keepalives_count"], "3");
	EXPECT_EQ(m["tcp_user_timeout"], "10000");
	EXPECT_EQ(m["connect_timeout"], "5");
	EXPECT_EQ(m["application_name"], "livenotifyd reader");
	EXPECT_EQ(p.connect_timeout_s, 5);
	EXPECT_EQ(p.hosts, 1);
}

TEST(Conninfo, UrlSettingsWin)
{
	ConnParams p;
	std::string err;
	ASSERT_TRUE(build_conninfo("postgresql://u:p%40ss@db1:5433,db2/app?keepalives_idle=60"
							   "&connect_timeout=3&application_name=theirs&sslmode=require",
							   "livenotifyd worker 0", &p, &err, no_env))
		<< err;
	auto m = reparsed(p);
	EXPECT_EQ(m["keepalives_idle"], "60");
	EXPECT_EQ(m["connect_timeout"], "3");
	EXPECT_EQ(m["keepalives"], "1"); /* not in the URL: the default */
	EXPECT_EQ(m["host"], "db1,db2");
	EXPECT_EQ(m["port"], "5433,");
	EXPECT_EQ(m["user"], "u");
	EXPECT_EQ(m["password"], "p@ss");
	EXPECT_EQ(m["dbname"], "app");
	EXPECT_EQ(m["sslmode"], "require");
	/* Ours: pg_stat_activity must tell the daemon's sessions apart. */
	EXPECT_EQ(m["application_name"], "livenotifyd worker 0");
	EXPECT_EQ(p.connect_timeout_s, 3);
	EXPECT_EQ(p.hosts, 2);
	/* Each keyword once. */
	std::map<std::string, int> seen;
	for (const auto &k : p.keys)
		EXPECT_EQ(++seen[k], 1) << k;
}

TEST(Conninfo, KeyValueFormAndOneSecondTimeout)
{
	ConnParams p;
	std::string err;
	ASSERT_TRUE(build_conninfo("host=/tmp port=5432 dbname=x connect_timeout=1 keepalives=0", "r",
							   &p, &err, no_env))
		<< err;
	auto m = reparsed(p);
	EXPECT_EQ(m["keepalives"], "0"); /* an explicit 0 is kept */
	EXPECT_EQ(m["keepalives_count"], "3");
	/* libpq raises a 1 s connect_timeout to 2 s; the enforced deadline does too. */
	EXPECT_EQ(p.connect_timeout_s, 2);
}

TEST(Conninfo, EnvironmentVariableBeatsTheDefault)
{
	ConnParams p;
	std::string err;
	ASSERT_TRUE(build_conninfo("dbname=x", "r", &p, &err, env_connect_timeout)) << err;
	auto m = reparsed(p);
	EXPECT_EQ(m.count("connect_timeout"), 0u); /* libpq reads PGCONNECT_TIMEOUT itself */
	EXPECT_EQ(p.connect_timeout_s, 7);
	EXPECT_EQ(m["tcp_user_timeout"], "10000");
}

TEST(Conninfo, BadUrlIsAnError)
{
	ConnParams p;
	std::string err;
	EXPECT_FALSE(build_conninfo("host=x nonsense_key=1", "r", &p, &err, no_env));
	EXPECT_NE(err.find("nonsense_key"), std::string::npos) << err;
	EXPECT_FALSE(build_conninfo("postgresql://h/db?keepalives_idle", "r", &p, &err, no_env));
	EXPECT_FALSE(err.empty());
}

TEST(Conninfo, EveryDefaultIsALibpqKeyword)
{
	PQconninfoOption *opts = PQconndefaults();
	ASSERT_NE(opts, nullptr);
	for (const auto &d : conninfo_defaults())
	{
		bool known = false;
		for (PQconninfoOption *o = opts; o->keyword; o++)
			known = known || strcmp(o->keyword, d.key) == 0;
		EXPECT_TRUE(known) << d.key;
	}
	PQconninfoFree(opts);
}

/* ---- target_session_attrs for multi-host URLs (failover) ---- */

namespace
{
const char *
env_target_any(const char *name)
{
	return strcmp(name, "PGTARGETSESSIONATTRS") == 0 ? "any" : nullptr;
}

std::string
target_of(const std::string &url, const char *(*env)(const char *) = no_env)
{
	ConnParams p;
	std::string err;
	EXPECT_TRUE(build_conninfo(url, "t", &p, &err, env)) << err;
	auto m = reparsed(p);
	auto it = m.find("target_session_attrs");
	return it == m.end() ? "" : it->second;
}
} // namespace

TEST(ConninfoTargetSessionAttrs, MultiHostGetsReadWrite)
{
	EXPECT_EQ(target_of("postgresql://u@10.0.0.1:5432,10.0.0.2:5433/app"), "read-write");
	EXPECT_EQ(target_of("host=db1,db2 port=5432,5433 dbname=app"), "read-write");
	EXPECT_EQ(target_of("hostaddr=10.0.0.1,10.0.0.2 dbname=app"), "read-write");
	/* Unix socket directories are hosts too. */
	EXPECT_EQ(target_of("host=/run/a,/run/b port=5432,5433"), "read-write");
}

TEST(ConninfoTargetSessionAttrs, SingleHostIsLeftAlone)
{
	/* libpq's own default (any) applies; the daemon refuses a standby after connect. */
	EXPECT_EQ(target_of("postgresql://u@db1:5432/app"), "");
	EXPECT_EQ(target_of("host=/tmp port=5432 dbname=app"), "");
	EXPECT_EQ(target_of("dbname=app"), "");
	EXPECT_EQ(target_of("host=db1 port=5432 dbname=app"), "");
}

TEST(ConninfoTargetSessionAttrs, TheUrlsOrTheEnvironmentsChoiceWins)
{
	EXPECT_EQ(target_of("postgresql://u@db1,db2/app?target_session_attrs=any"), "any");
	EXPECT_EQ(target_of("host=db1,db2 target_session_attrs=primary"), "primary");
	/* From the environment: not added, so libpq reads PGTARGETSESSIONATTRS itself. */
	EXPECT_EQ(target_of("host=db1,db2 dbname=app", env_target_any), "");
}
