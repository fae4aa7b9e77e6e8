/*
 * config.hpp: livenotifyd configuration.
 *
 * One table of keys (config.cpp) serves the file, the command line and the
 * environment, so a key has the same name everywhere:
 *   file          key = value            (# comments, blank lines ignored)
 *   environment   LIVENOTIFY_KEY=value   (upper case, '-' and '.' as '_')
 *   flag          --key=value or --key value ('-' and '_' interchangeable)
 * Later sources win: defaults < file < environment < flags.
 *
 * Free of lws and libpq so it is unit-tested without sockets.
 */
#pragma once

#include "log.hpp"
#include "net_address.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace livenotify
{

enum class AuthMode
{
	Jwt,
	Sql,
	None
};

struct Config
{
	/* network */
	std::string listen_address = "127.0.0.1";
	int port = 8765;
	std::string ws_path = "/ws";
	std::vector<std::string> allowed_origins; /* empty: no Origin check */
	/* Peers whose X-Forwarded-For is believed (core/net_address.hpp); empty: none. */
	std::vector<Cidr> trusted_proxies;
	int upgrade_timeout_s = 5; /* TCP connect to a complete HTTP upgrade request */
	/*
	 * The metrics listener ("HOST:PORT", "[V6]:PORT", or "off"): /metrics and
	 * /healthz, never on the public listener.  Loopback unless metrics_token
	 * is set (validate_config()).  Empty: 127.0.0.1 on port + 1000, so that
	 * daemons on neighbouring ports of one host do not collide.
	 */
	std::string metrics_listen;
	std::string metrics_token; /* empty: no Authorization needed (loopback only) */

	/* database */
	std::string database_url; /* libpq conninfo or URI; empty: libpq defaults (PG* env) */
	std::string source; /* source used for resume and counts; empty: the only registered one */
	int db_workers = 2;
	int read_batch = 1000;
	int read_timeout_ms = 10000;
	/*
	 * Under a stream of commits, wait this long after a batch before the next
	 * read() so that it returns several entries (one round trip, one hand-off
	 * and one wake-up for all of them); an idle system still gets each commit
	 * at once (reader.cpp, "Coalescing").  0: never wait.
	 */
	int read_coalesce_us = 1000;
	int db_timeout_ms = 5000; /* every database call: its own wait + this, then cancelled */
	int max_read_age_ms = 0;  /* /healthz 503 past it; 0: read_timeout_ms + db_timeout_ms */
	int reconnect_min_ms = 100;
	int reconnect_max_ms = 10000;
	int catchup_max_rows = 1000;
	int unread_cache_ttl_ms = 60000; /* 0: count every batch */

	/* authentication */
	AuthMode auth = AuthMode::Jwt;
	std::string jwt_alg = "HS256";
	std::string jwt_secret;
	std::string jwt_secret_file;
	std::string jwt_public_key_file;
	std::string jwt_issuer;
	std::string jwt_audience;
	int jwt_leeway_s = 10;
	int jwt_max_lifetime_s = 86400; /* longest exp - now / exp - iat accepted */
	std::string auth_query;
	int auth_timeout_ms = 3000;

	/* limits */
	int max_sockets = 20000;
	int max_sockets_per_user = 16;
	int max_pending_auth = 256;			   /* sockets not authenticated yet (core/preauth.hpp) */
	int max_sockets_per_address = 2048;	   /* per client address (core/address_limits.hpp) */
	int max_pending_auth_per_address = 32; /* of max_pending_auth, per client address */
	size_t send_queue_bytes = 1 << 20;
	size_t max_message_bytes = 8192;
	int ping_interval_s = 30;
	/* hostile clients (issue 12, findings 1 and 3; docs/operations.md "Memory bound") */
	int client_message_rate = 10;  /* messages per second per socket; over: 1008 */
	int client_message_burst = 20; /* ... after this many at once */
	int resume_rate = 2;		   /* resumes per second per user; over: 1013 */
	int resume_burst = 32;		   /* ... after this many at once */
	int catchup_queue_max = 1024;  /* catch-up page jobs waiting for a worker; over: resync */

	LogLevel log_level = LogLevel::Info;

	/* derived by validate_config(): the verification key (secret or PEM) */
	std::string jwt_key;
	/* derived by validate_config() from metrics_listen; metrics_port 0: no metrics listener */
	std::string metrics_address;
	int metrics_port = 0;
};

/* The read age past which /healthz answers 503 (max_read_age_ms, 0: derived). */
inline int
effective_max_read_age_ms(const Config &c)
{
	return c.max_read_age_ms ? c.max_read_age_ms : c.read_timeout_ms + c.db_timeout_ms;
}
/*
 * "HOST:PORT" / "[V6]:PORT" into its parts; false (and why) if malformed.
 * "off" is not accepted here (validate_config() handles it).
 */
bool parse_listen(const std::string &text, std::string *host, int *port, std::string *why);

/*
 * Whether a JWT configuration requires neither aud nor iss: then any token
 * signed with the key works, e.g. the application's own session or refresh
 * tokens (issue 12, finding 7).  Refused outside loopback, warned about on it.
 */
bool jwt_unscoped(const Config &cfg);

/* Thrown for an invalid configuration; key names the bad key. */
struct ConfigError : std::runtime_error
{
	std::string key;
	ConfigError(std::string k, const std::string &msg)
		: std::runtime_error(k.empty() ? msg : "invalid value for " + k + ": " + msg),
		  key(std::move(k))
	{
	}
};

/* What the command line asked for. */
struct CommandLine
{
	bool help = false;
	bool version = false;
	bool check_config = false;
	std::string config_file; /* --config / -c, else LIVENOTIFY_CONFIG */
	std::vector<std::pair<std::string, std::string>> settings; /* --key=value, in order */
};

/* Throws ConfigError for an unknown flag or a flag without its value. */
CommandLine parse_command_line(int argc, const char *const *argv);

using EnvLookup = std::function<const char *(const char *)>;

/*
 * Build the configuration: defaults, then file text (if file_path non-empty),
 * then env, then flags; then validate_config().  Throws ConfigError.
 */
Config load_config(const CommandLine &cmd, const EnvLookup &env);

/* Apply "key = value" lines; origin names the file for error messages. */
void apply_config_text(Config &cfg, const std::string &text, const std::string &origin);

/* Set one key from text; throws ConfigError naming the key. */
void apply_setting(Config &cfg, const std::string &key, const std::string &value);

/* Apply LIVENOTIFY_* variables for every known key. */
void apply_environment(Config &cfg, const EnvLookup &env);

/*
 * Cross-key checks and key material: auth none only on loopback, jwt keys
 * present and readable (the file is read here), sql mode has a query.
 */
void validate_config(Config &cfg);

/*
 * auth = none is only for a listener no other host can reach: an IP literal in
 * 127.0.0.0/8 or ::1, or a name every address of which is one of those
 * (resolved here with getaddrinfo, as the bind resolves it).  "127.x.example"
 * is a name, not an address.
 */
bool is_loopback_address(const std::string &address);

/* --help text: every key with its default and meaning. */
std::string config_help();

const char *auth_mode_name(AuthMode mode);

} // namespace livenotify
