/*
 * test_conninfo.cpp: target_session_attrs=read-write is added for a
 * multi-host database_url that does not choose one itself, and only then.
 */
#include "conninfo.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace livenotify;

namespace
{
struct NoEnv
{
	NoEnv()
	{
		unsetenv("PGTARGETSESSIONATTRS");
	}
};
} // namespace

TEST(Conninfo, MultiHostUriGetsReadWrite)
{
	NoEnv e;
	EXPECT_TRUE(conninfo_multi_host("postgresql://u@10.0.0.1:5432,10.0.0.2:5433/app"));
	EXPECT_EQ(default_target_session_attrs("postgresql://u@10.0.0.1:5432,10.0.0.2:5433/app"),
			  std::optional<std::string>("read-write"));
	EXPECT_EQ(default_target_session_attrs("host=db1,db2 port=5432,5433 dbname=app"),
			  std::optional<std::string>("read-write"));
	EXPECT_EQ(default_target_session_attrs("hostaddr=10.0.0.1,10.0.0.2 dbname=app"),
			  std::optional<std::string>("read-write"));
}

TEST(Conninfo, SingleHostIsLeftAlone)
{
	NoEnv e;
	EXPECT_FALSE(conninfo_multi_host("postgresql://u@db1:5432/app"));
	EXPECT_EQ(default_target_session_attrs("postgresql://u@db1:5432/app"), std::nullopt);
	EXPECT_EQ(default_target_session_attrs("host=/tmp port=5432 dbname=app"), std::nullopt);
	EXPECT_EQ(default_target_session_attrs("dbname=app"), std::nullopt);
	/* One host, several ports is still one host for this rule. */
	EXPECT_EQ(default_target_session_attrs("host=db1 port=5432 dbname=app"), std::nullopt);
}

TEST(Conninfo, TheUrlsOwnChoiceWins)
{
	NoEnv e;
	EXPECT_EQ(default_target_session_attrs("postgresql://u@db1,db2/app?target_session_attrs=any"),
			  std::nullopt);
	EXPECT_EQ(default_target_session_attrs("host=db1,db2 target_session_attrs=primary"),
			  std::nullopt);
	EXPECT_EQ(conninfo_value("host=db1,db2 target_session_attrs=primary", "target_session_attrs"),
			  std::optional<std::string>("primary"));
}

TEST(Conninfo, TheEnvironmentsChoiceWins)
{
	NoEnv e;
	setenv("PGTARGETSESSIONATTRS", "any", 1);
	EXPECT_EQ(default_target_session_attrs("host=db1,db2 dbname=app"), std::nullopt);
	unsetenv("PGTARGETSESSIONATTRS");
	EXPECT_EQ(default_target_session_attrs("host=db1,db2 dbname=app"),
			  std::optional<std::string>("read-write"));
}

TEST(Conninfo, UnparsableIsLeftToLibpq)
{
	NoEnv e;
	/* libpq reports the error at connect, with its own message. */
	EXPECT_EQ(default_target_session_attrs("host=db1,db2 'unterminated"), std::nullopt);
	EXPECT_EQ(conninfo_value("nonsense_keyword=1", "host"), std::nullopt);
}
