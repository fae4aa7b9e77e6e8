/*
 * test_metrics_log.cpp: the Prometheus text and log-line quoting.
 */
#include "log.hpp"
#include "metrics.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

TEST(Metrics, PrometheusTextFormat)
{
	Counters c;
	c.frames_sent = 12;
	c.slow_client_closes = 1;
	c.db_up = 1;
	Gauges g;
	g.sockets = 3;
	g.users = 2;
	g.queue_lag_seconds = 0.25;
	std::string t = render_metrics(c, g);
	EXPECT_NE(t.find("# TYPE livenotifyd_sockets gauge\nlivenotifyd_sockets 3\n"),
			  std::string::npos);
	EXPECT_NE(
		t.find("# TYPE livenotifyd_frames_sent_total counter\nlivenotifyd_frames_sent_total 12\n"),
		std::string::npos);
	EXPECT_NE(t.find("livenotifyd_slow_client_closes_total 1\n"), std::string::npos);
	EXPECT_NE(t.find("livenotifyd_queue_lag_seconds 0.25\n"), std::string::npos);
	EXPECT_NE(t.find("livenotifyd_db_up 1\n"), std::string::npos);
	for (const char *name :
		 {"livenotifyd_users", "livenotifyd_bytes_sent_total", "livenotifyd_auth_failures_total",
		  "livenotifyd_lost_entries_total", "livenotifyd_overflow_entries_total",
		  "livenotifyd_db_reconnects_total"})
		EXPECT_NE(t.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
}

TEST(Log, QuoteKeepsOneLine)
{
	EXPECT_EQ(log_quote("plain"), "\"plain\"");
	EXPECT_EQ(log_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
	EXPECT_EQ(log_quote("two\nlines"), "\"two\\x0alines\"");
	std::string q = log_quote(std::string(1000, 'x'));
	EXPECT_LT(q.size(), 220u);
	EXPECT_EQ(q.substr(q.size() - 4), "...\"");
}

TEST(Log, ErrorTextKeepsEveryHost)
{
	/* libpq's message for a two-host URL: the second host's reason comes after 200 characters. */
	std::string err =
		"connection to server at \"10.0.0.1\", port 5432 failed: " + std::string(300, 'a') +
		" connection to server at \"10.0.0.2\", port 5432 failed: FATAL: "
		"sorry, too many clients already";
	std::string q = log_error_text(err);
	EXPECT_NE(q.find("sorry, too many clients already"), std::string::npos) << q;
	EXPECT_EQ(q.find("..."), std::string::npos);
	/* Still bounded. */
	EXPECT_LT(log_error_text(std::string(100000, 'x')).size(), 1600u);
}

TEST(Log, Levels)
{
	LogLevel l;
	EXPECT_TRUE(parse_log_level("debug", &l));
	EXPECT_EQ(l, LogLevel::Debug);
	EXPECT_FALSE(parse_log_level("loud", &l));
	set_log_level(LogLevel::Warn);
	EXPECT_FALSE(log_enabled(LogLevel::Info));
	EXPECT_TRUE(log_enabled(LogLevel::Error));
	set_log_level(LogLevel::Info);
}
