/*
 * test_db_health.cpp: what /healthz answers about the database (db_health.hpp).
 */
#include "db_health.hpp"

#include <gtest/gtest.h>

using namespace livenotify;
using std::chrono::milliseconds;

namespace
{

HealthInputs
healthy()
{
	HealthInputs in;
	in.reader_up = true;
	in.read_age = milliseconds(100);
	in.max_read_age = milliseconds(15000);
	in.workers = 2;
	return in;
}

} // namespace

TEST(DbHealth, HealthyIsOk)
{
	HealthVerdict v = evaluate_health(healthy());
	EXPECT_TRUE(v.ok);
	EXPECT_EQ(v.body, "ok\n");
}

TEST(DbHealth, StoppingFirst)
{
	HealthInputs in = healthy();
	in.stopping = true;
	in.reader_up = false;
	HealthVerdict v = evaluate_health(in);
	EXPECT_FALSE(v.ok);
	EXPECT_EQ(v.body, "stopping\n");
}

TEST(DbHealth, ReaderDownGivesItsLastFailure)
{
	HealthInputs in = healthy();
	in.reader_up = false;
	in.reader_error = failure_summary(DbFailure::Error, "42501");
	HealthVerdict v = evaluate_health(in);
	EXPECT_FALSE(v.ok);
	EXPECT_EQ(v.body, "database unreachable (reader): error (SQLSTATE 42501, persistent), see "
					  "the log\n");
}

TEST(DbHealth, StaleReadIs503EvenWhenConnected)
{
	HealthInputs in = healthy();
	in.read_age = milliseconds(15001);
	HealthVerdict v = evaluate_health(in);
	EXPECT_FALSE(v.ok);
	EXPECT_EQ(v.body, "database read stale: last successful read 15001 ms ago (max_read_age_ms "
					  "15000)\n");
	in.read_age = milliseconds(15000);
	EXPECT_TRUE(evaluate_health(in).ok);
	in.read_age.reset();
	EXPECT_FALSE(evaluate_health(in).ok);
}

TEST(DbHealth, AllWorkersFailingIs503SomeIsNot)
{
	HealthInputs in = healthy();
	in.workers_failing = 1;
	EXPECT_TRUE(evaluate_health(in).ok);
	in.workers_failing = 2;
	in.worker_error = failure_summary(DbFailure::TimedOut, "");
	HealthVerdict v = evaluate_health(in);
	EXPECT_FALSE(v.ok);
	EXPECT_EQ(v.body, "database workers failing: 2 of 2 catch-up connections failing: no answer "
					  "by the deadline, see the log\n");
}

TEST(DbHealth, PersistentSqlstates)
{
	for (const char *s : {"42501", "42883", "3D000", "28P01", "28000", "3F000", "42P01"})
		EXPECT_TRUE(persistent_sqlstate(s)) << s;
	for (const char *s : {"", "53300", "57P01", "57014", "08006", "40001", "4250", "425011"})
		EXPECT_FALSE(persistent_sqlstate(s)) << s;
}

TEST(DbHealth, StateTracksReadAndWorkers)
{
	DbHealth h;
	auto t0 = DbHealth::Clock::now();
	EXPECT_FALSE(h.read_age(t0));
	h.reader_failed("x");
	EXPECT_EQ(h.reader_error(), "x");
	h.read_ok(t0);
	EXPECT_EQ(h.reader_error(), "");
	EXPECT_EQ(h.read_age(t0 + milliseconds(250))->count(), 250);
	h.worker_changed(true, "w");
	h.worker_changed(true, "v");
	EXPECT_EQ(h.workers_failing(), 2);
	EXPECT_EQ(h.worker_error(), "v");
	h.worker_changed(false, "");
	EXPECT_EQ(h.workers_failing(), 1);
}

TEST(DbHealth, StandbySaysSo)
{
	HealthInputs in = healthy();
	in.reader_up = false;
	in.reader_error = failure_summary(DbFailure::Standby, "");
	HealthVerdict v = evaluate_health(in);
	EXPECT_FALSE(v.ok);
	EXPECT_EQ(v.body, "database unreachable (reader): connected to a standby (in recovery), see "
					  "the log\n");
}
