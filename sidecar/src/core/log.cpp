/*
 * log.cpp: see log.hpp.
 */
#include "log.hpp"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <sys/time.h>
#include <unistd.h>

namespace livenotify
{

static std::atomic<int> current_level{static_cast<int>(LogLevel::Info)};

void
set_log_level(LogLevel level)
{
	current_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel
log_level()
{
	return static_cast<LogLevel>(current_level.load(std::memory_order_relaxed));
}

bool
log_enabled(LogLevel level)
{
	return static_cast<int>(level) <= current_level.load(std::memory_order_relaxed);
}

bool
parse_log_level(std::string_view text, LogLevel *out)
{
	if (text == "error")
		*out = LogLevel::Error;
	else if (text == "warn" || text == "warning")
		*out = LogLevel::Warn;
	else if (text == "info")
		*out = LogLevel::Info;
	else if (text == "debug")
		*out = LogLevel::Debug;
	else
		return false;
	return true;
}

const char *
log_level_name(LogLevel level)
{
	switch (level)
	{
		case LogLevel::Error:
			return "error";
		case LogLevel::Warn:
			return "warn";
		case LogLevel::Info:
			return "info";
		case LogLevel::Debug:
			return "debug";
	}
	return "info";
}

void
log_event(LogLevel level, const char *event, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;

	/* PIPE_BUF (4096 on Linux): one write(2) of a line this long is atomic on a pipe. */
	char line[4096];
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, nullptr);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s event=%s",
					 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
					 static_cast<int>(tv.tv_usec / 1000), log_level_name(level), event);
	if (n < 0)
		return;
	size_t len = static_cast<size_t>(n);
	if (fmt && fmt[0] && len < sizeof(line) - 2)
	{
		line[len++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
		va_end(ap);
		if (m > 0)
			len += static_cast<size_t>(m);
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* One write(2) per line: atomic for stderr pipes up to PIPE_BUF, so threads never interleave.
	 */
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void) ignored;
}

std::string
log_quote(std::string_view value, size_t max_len)
{
	std::string out;
	out.reserve(value.size() + 2);
	out.push_back('"');
	size_t i = 0;
	for (; i < value.size() && i < max_len; i++)
	{
		unsigned char c = static_cast<unsigned char>(value[i]);
		if (c == '"' || c == '\\')
		{
			out.push_back('\\');
			out.push_back(static_cast<char>(c));
		}
		else if (c < 0x20 || c == 0x7f)
		{
			char buf[8];
			snprintf(buf, sizeof(buf), "\\x%02x", c);
			out += buf;
		}
		else
			out.push_back(static_cast<char>(c));
	}
	if (i < value.size())
		out += "...";
	out.push_back('"');
	return out;
}

} // namespace livenotify

namespace livenotify
{

std::string
log_error_text(std::string_view value)
{
	return log_quote(value, 1500);
}

} // namespace livenotify
