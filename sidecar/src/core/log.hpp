/*
 * log.hpp: one line per event on stderr, logfmt style
 * ("ts=... level=info event=ws_open user=42 ...").
 *
 * Thread-safe: every thread logs; a line is formatted first and written with a
 * single write(2) so lines from different threads never interleave.
 */
#pragma once

#include <string>
#include <string_view>

namespace livenotify
{

enum class LogLevel
{
	Error = 0,
	Warn = 1,
	Info = 2,
	Debug = 3
};

/* Any thread.  SIGHUP changes the level while other threads log. */
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);

/* Parse "error", "warn", "info", "debug"; false when unknown. */
bool parse_log_level(std::string_view text, LogLevel *out);
const char *log_level_name(LogLevel level);

/*
 * Any thread.  Writes "ts=... level=... event=<event> <fields>"; fields is
 * printf-formatted and must already be key=value pairs.  Values that come from
 * clients must go through log_quote() so a hostile value cannot forge a line.
 */
void log_event(LogLevel level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quote a value for a log line: "..." with control characters escaped, capped in length. */
std::string log_quote(std::string_view value, size_t max_len = 200);

/*
 * Quote a database error for a log line.  libpq joins the errors of every
 * host of a multi-host URL into one message, so the 200 characters of
 * log_quote() lose all but the first host's: an error keeps up to 1500
 * characters, which with the rest of the line stays within one PIPE_BUF
 * write (log_event()).
 */
std::string log_error_text(std::string_view value);

} // namespace livenotify

#define LOG_ERROR(event, ...)                                                                      \
	::livenotify::log_event(::livenotify::LogLevel::Error, event, __VA_ARGS__)
#define LOG_WARN(event, ...)                                                                       \
	::livenotify::log_event(::livenotify::LogLevel::Warn, event, __VA_ARGS__)
#define LOG_INFO(event, ...)                                                                       \
	::livenotify::log_event(::livenotify::LogLevel::Info, event, __VA_ARGS__)
#define LOG_DEBUG(event, ...)                                                                      \
	do                                                                                             \
	{                                                                                              \
		if (::livenotify::log_enabled(::livenotify::LogLevel::Debug))                              \
			::livenotify::log_event(::livenotify::LogLevel::Debug, event, __VA_ARGS__);            \
	} while (0)
