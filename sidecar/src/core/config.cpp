/*
 * config.cpp: the key table and the three sources (file, environment, flags).
 */
#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <strings.h>
#include <cstdlib>
#include <fstream>
#include <netdb.h>
#include <sys/socket.h>
#include <sstream>

namespace livenotify
{

namespace
{

struct KeyDef
{
	const char *name;
	const char *help;
	std::function<void(Config &, const std::string &)> set;
};

std::string
trim(const std::string &s)
{
	size_t b = s.find_first_not_of(" \t\r\n");
	if (b == std::string::npos)
		return "";
	size_t e = s.find_last_not_of(" \t\r\n");
	return s.substr(b, e - b + 1);
}

/* Integers are parsed with strtoll and range-checked: "12abc" is an error, not 12. */
long long
parse_int(const std::string &key, const std::string &value, long long lo, long long hi)
{
	errno = 0;
	char *end = nullptr;
	std::string v = trim(value);
	long long n = strtoll(v.c_str(), &end, 10);
	if (v.empty() || errno != 0 || *end != '\0')
		throw ConfigError(key, "\"" + value + "\" is not an integer");
	if (n < lo || n > hi)
		throw ConfigError(key, std::to_string(n) + " is out of range [" + std::to_string(lo) +
								   ", " + std::to_string(hi) + "]");
	return n;
}

/* Byte sizes accept a kB/MB/GB suffix (1024-based, as PostgreSQL does). */
size_t
parse_bytes(const std::string &key, const std::string &value)
{
	std::string v = trim(value);
	long long mult = 1;
	auto ends_with = [&](const char *suffix) {
		size_t n = strlen(suffix);
		if (v.size() > n && strcasecmp(v.c_str() + v.size() - n, suffix) == 0)
		{
			v = trim(v.substr(0, v.size() - n));
			return true;
		}
		return false;
	};
	if (ends_with("kB") || ends_with("KiB") || ends_with("k"))
		mult = 1024;
	else if (ends_with("MB") || ends_with("MiB") || ends_with("M"))
		mult = 1024 * 1024;
	else if (ends_with("GB") || ends_with("GiB") || ends_with("G"))
		mult = 1024LL * 1024 * 1024;
	else if (ends_with("B"))
		mult = 1;
	long long n = parse_int(key, v, 1, LLONG_MAX / (1024LL * 1024 * 1024));
	return static_cast<size_t>(n * mult);
}

std::vector<std::string>
parse_list(const std::string &value)
{
	std::vector<std::string> out;
	std::stringstream ss(value);
	std::string item;
	while (std::getline(ss, item, ','))
	{
		item = trim(item);
		if (!item.empty())
			out.push_back(item);
	}
	return out;
}

#define INT_KEY(NAME, LO, HI, HELP)                                                                \
	{                                                                                              \
#NAME, HELP, [](Config & c, const std::string &v) {                                        \
			c.NAME = static_cast<int>(parse_int(#NAME, v, LO, HI));                                \
		}                                                                                          \
	}
#define STR_KEY(NAME, HELP)                                                                        \
	{                                                                                              \
#NAME, HELP, [](Config & c, const std::string &v) {                                        \
			c.NAME = v;                                                                            \
		}                                                                                          \
	}

const std::vector<KeyDef> &
key_table()
{
	static const std::vector<KeyDef> keys = {
		STR_KEY(listen_address, "address to bind (default 127.0.0.1)"),
		INT_KEY(port, 1, 65535, "TCP port for the WebSocket path and /healthz (default 8765)"),
		STR_KEY(metrics_listen,
				"HOST:PORT of the /metrics (and /healthz) listener, or off; loopback unless "
				"metrics_token is set (default 127.0.0.1 on port + 1000, i.e. 127.0.0.1:9765)"),
		STR_KEY(metrics_token,
				"bearer token the metrics listener requires (Authorization: Bearer ...; "
				"empty: none, loopback only)"),
		{"ws_path", "path of the WebSocket endpoint (default /ws)",
		 [](Config &c, const std::string &v) {
			 if (v.empty() || v[0] != '/')
				 throw ConfigError("ws_path", "must start with '/'");
			 c.ws_path = v;
		 }},
		{"allowed_origins", "comma-separated Origin allowlist; empty: no Origin check",
		 [](Config &c, const std::string &v) {
			 c.allowed_origins = parse_list(v);
		 }},
		{"trusted_proxies",
		 "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For gives "
		 "the client address; empty: the TCP peer is the client (default empty)",
		 [](Config &c, const std::string &v) {
			 c.trusted_proxies.clear();
			 for (const auto &item : parse_list(v))
			 {
				 std::optional<Cidr> r = Cidr::parse(item);
				 if (!r)
					 throw ConfigError("trusted_proxies",
									   "\"" + item + "\" is not an IP address or CIDR range");
				 c.trusted_proxies.push_back(*r);
			 }
		 }},
		INT_KEY(upgrade_timeout_s, 1, 300,
				"seconds from TCP connect to a complete WebSocket upgrade request; then "
				"closed (default 5)"),
		STR_KEY(database_url, "libpq connection string or URI (default: libpq defaults, PG* env)"),
		STR_KEY(source, "source for resume and counts (default: the only registered source)"),
		INT_KEY(db_workers, 1, 64, "database connections for auth and catch-up (default 2)"),
		INT_KEY(read_batch, 1, 100000, "max entries per livenotify.read() call (default 1000)"),
		INT_KEY(read_timeout_ms, 100, 600000, "livenotify.read() wait in ms (default 10000)"),
		INT_KEY(read_coalesce_us, 0, 100000,
				"under a stream of commits, wait this long (microseconds) after a batch so that "
				"the next read() takes several; 0: never (default 1000)"),
		INT_KEY(db_timeout_ms, 100, 600000,
				"deadline of every database call beyond its own wait (read()'s read_timeout_ms); "
				"past it the call is cancelled and the session dropped (default 5000)"),
		INT_KEY(max_read_age_ms, 0, 3600000,
				"/healthz answers 503 when the reader's last successful read() is older; "
				"0: read_timeout_ms + db_timeout_ms (default 0)"),
		INT_KEY(reconnect_min_ms, 1, 600000, "first database reconnect delay in ms (default 100)"),
		INT_KEY(reconnect_max_ms, 1, 3600000, "max database reconnect delay in ms (default 10000)"),
		INT_KEY(catchup_max_rows, 1, 1000000,
				"max rows replayed on resume, then resync (default 1000)"),
		INT_KEY(unread_cache_ttl_ms, 0, 86400000,
				"age at which an online user's cached unread count is fetched again; 0: fetch "
				"for every batch (default 60000)"),
		{"auth", "jwt | sql | none (none only on a loopback listen_address; default jwt)",
		 [](Config &c, const std::string &v) {
			 if (v == "jwt")
				 c.auth = AuthMode::Jwt;
			 else if (v == "sql")
				 c.auth = AuthMode::Sql;
			 else if (v == "none")
				 c.auth = AuthMode::None;
			 else
				 throw ConfigError("auth", "\"" + v + "\" is not one of jwt, sql, none");
		 }},
		{"jwt_alg", "HS256 or RS256 (default HS256)",
		 [](Config &c, const std::string &v) {
			 if (v != "HS256" && v != "RS256")
				 throw ConfigError("jwt_alg", "\"" + v + "\" is not HS256 or RS256");
			 c.jwt_alg = v;
		 }},
		STR_KEY(jwt_secret, "HS256 shared secret, at least 32 bytes"),
		STR_KEY(jwt_secret_file,
				"file holding the HS256 secret (trailing newline stripped; at least 32 bytes)"),
		STR_KEY(jwt_public_key_file, "PEM public key file for RS256"),
		STR_KEY(jwt_issuer, "required iss claim (empty: not checked)"),
		STR_KEY(jwt_audience, "required aud claim (empty: not checked)"),
		INT_KEY(jwt_leeway_s, 0, 3600, "clock skew allowed for exp/nbf in seconds (default 10)"),
		INT_KEY(jwt_max_lifetime_s, 60, 31536000,
				"longest token lifetime accepted (exp - now and exp - iat) in seconds "
				"(default 86400)"),
		STR_KEY(auth_query, "sql mode: query with $1 = token returning the user key"),
		INT_KEY(auth_timeout_ms, 100, 600000,
				"deadline from the upgrade to a successful authentication in ms; then closed "
				"1008 (default 3000)"),
		INT_KEY(max_sockets, 1, 10000000, "max WebSocket connections in total (default 20000)"),
		INT_KEY(max_sockets_per_user, 1, 100000, "max WebSocket connections per user (default 16)"),
		INT_KEY(max_pending_auth, 1, 100000,
				"max sockets not authenticated yet, apart from max_sockets; when full the "
				"oldest is closed (default 256)"),
		INT_KEY(max_sockets_per_address, 0, 10000000,
				"max sockets of one client address (see trusted_proxies); 0: no limit "
				"(default 2048)"),
		INT_KEY(max_pending_auth_per_address, 1, 100000,
				"max sockets of one client address not authenticated yet (default 32)"),
		{"send_queue_bytes", "per-socket send queue bound; over it: close 1008 (default 1MB)",
		 [](Config &c, const std::string &v) {
			 c.send_queue_bytes = parse_bytes("send_queue_bytes", v);
		 }},
		{"max_message_bytes", "largest client message accepted; over it: close 1009 (default 8kB)",
		 [](Config &c, const std::string &v) {
			 c.max_message_bytes = parse_bytes("max_message_bytes", v);
		 }},
		INT_KEY(ping_interval_s, 5, 3600,
				"WebSocket ping interval; dead peers dropped at 2x (default 30)"),
		INT_KEY(client_message_rate, 1, 1000000,
				"client messages per second per socket, after client_message_burst; over it: "
				"close 1008 (default 10)"),
		INT_KEY(client_message_burst, 1, 1000000,
				"client messages a socket may send at once (default 20)"),
		INT_KEY(resume_rate, 1, 1000000,
				"resumes per second per user, after resume_burst; over it: close 1013 (default 2)"),
		INT_KEY(resume_burst, 1, 1000000, "resumes a user may start at once (default 32)"),
		INT_KEY(catchup_queue_max, 1, 1000000,
				"catch-up page jobs waiting for a database worker; over it the resume ends "
				"with resync catchup_failed (default 1024)"),
		{"log_level", "error | warn | info | debug (default info)",
		 [](Config &c, const std::string &v) {
			 if (!parse_log_level(v, &c.log_level))
				 throw ConfigError("log_level", "\"" + v + "\" is not error, warn, info or debug");
		 }},
	};
	return keys;
}

std::string
normalise_key(std::string key)
{
	std::replace(key.begin(), key.end(), '-', '_');
	std::transform(key.begin(), key.end(), key.begin(),
				   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
	return key;
}

std::string
read_file(const std::string &key, const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw ConfigError(key, "cannot read file \"" + path + "\"");
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

} // namespace

const char *
auth_mode_name(AuthMode mode)
{
	switch (mode)
	{
		case AuthMode::Jwt:
			return "jwt";
		case AuthMode::Sql:
			return "sql";
		case AuthMode::None:
			return "none";
	}
	return "jwt";
}

void
apply_setting(Config &cfg, const std::string &key, const std::string &value)
{
	std::string k = normalise_key(key);
	for (const auto &def : key_table())
	{
		if (k == def.name)
		{
			def.set(cfg, value);
			return;
		}
	}
	throw ConfigError(k, "unknown configuration key");
}

void
apply_config_text(Config &cfg, const std::string &text, const std::string &origin)
{
	std::stringstream ss(text);
	std::string line;
	int lineno = 0;
	while (std::getline(ss, line))
	{
		lineno++;
		std::string t = trim(line);
		if (t.empty() || t[0] == '#')
			continue;
		size_t eq = t.find('=');
		if (eq == std::string::npos)
			throw ConfigError("",
							  origin + ":" + std::to_string(lineno) + ": expected \"key = value\"");
		std::string key = trim(t.substr(0, eq));
		std::string value = trim(t.substr(eq + 1));
		/* Optional quotes so values may keep leading/trailing spaces or '#'. */
		if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
			value = value.substr(1, value.size() - 2);
		try
		{
			apply_setting(cfg, key, value);
		}
		catch (const ConfigError &e)
		{
			throw ConfigError(e.key, std::string(e.what()) + " (" + origin + ":" +
										 std::to_string(lineno) + ")");
		}
	}
}

void
apply_environment(Config &cfg, const EnvLookup &env)
{
	for (const auto &def : key_table())
	{
		std::string var = "LIVENOTIFY_";
		for (const char *p = def.name; *p; p++)
			var.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(*p))));
		const char *v = env(var.c_str());
		if (v)
		{
			try
			{
				def.set(cfg, v);
			}
			catch (const ConfigError &e)
			{
				throw ConfigError(e.key, std::string(e.what()) + " (environment " + var + ")");
			}
		}
	}
}

CommandLine
parse_command_line(int argc, const char *const *argv)
{
	CommandLine cmd;
	for (int i = 1; i < argc; i++)
	{
		std::string arg = argv[i];
		if (arg == "-h" || arg == "--help")
		{
			cmd.help = true;
			continue;
		}
		if (arg == "-V" || arg == "--version")
		{
			cmd.version = true;
			continue;
		}
		if (arg == "--check-config" || arg == "-t")
		{
			cmd.check_config = true;
			continue;
		}
		std::string key, value;
		bool have_value = false;
		if (arg == "-c")
			key = "config";
		else if (arg.rfind("--", 0) == 0 && arg.size() > 2)
		{
			size_t eq = arg.find('=');
			key =
				normalise_key(arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2));
			if (eq != std::string::npos)
			{
				value = arg.substr(eq + 1);
				have_value = true;
			}
		}
		else
			throw ConfigError("", "unexpected argument \"" + arg + "\" (see --help)");
		if (!have_value)
		{
			if (i + 1 >= argc)
				throw ConfigError(key, "flag needs a value");
			value = argv[++i];
		}
		if (key == "config")
		{
			cmd.config_file = value;
			continue;
		}
		bool known = false;
		for (const auto &def : key_table())
			known = known || key == def.name;
		if (!known)
			throw ConfigError(key, "unknown flag --" + key + " (see --help)");
		cmd.settings.emplace_back(key, value);
	}
	return cmd;
}

bool
is_loopback_address(const std::string &address)
{
	if (std::optional<IpAddress> a = IpAddress::parse(address))
		return a->is_loopback();
	/* A name: loopback only if everything it resolves to is (the listener binds one of them). */
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	struct addrinfo *res = nullptr;
	if (address.empty() || getaddrinfo(address.c_str(), nullptr, &hints, &res) != 0)
		return false;
	bool all = res != nullptr;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
	{
		char host[NI_MAXHOST];
		std::optional<IpAddress> ip;
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), nullptr, 0,
						NI_NUMERICHOST) == 0)
			ip = IpAddress::parse(host);
		all = all && ip && ip->is_loopback();
	}
	freeaddrinfo(res);
	return all;
}

bool
parse_listen(const std::string &text, std::string *host, int *port, std::string *why)
{
	size_t colon = text.rfind(':');
	if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
	{
		*why = "expected HOST:PORT";
		return false;
	}
	std::string h = text.substr(0, colon);
	if (h.front() == '[')
	{
		if (h.size() < 3 || h.back() != ']')
		{
			*why = "expected [V6ADDRESS]:PORT";
			return false;
		}
		h = h.substr(1, h.size() - 2);
	}
	else if (h.find(':') != std::string::npos)
	{
		*why = "an IPv6 address goes in brackets: [::1]:PORT";
		return false;
	}
	std::string p = text.substr(colon + 1);
	if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
	{
		*why = "port \"" + p + "\" is not a number";
		return false;
	}
	int n = std::stoi(p);
	if (n < 1 || n > 65535)
	{
		*why = "port out of range [1, 65535]";
		return false;
	}
	*host = h;
	*port = n;
	return true;
}

bool
jwt_unscoped(const Config &cfg)
{
	return cfg.auth == AuthMode::Jwt && cfg.jwt_issuer.empty() && cfg.jwt_audience.empty();
}

void
validate_config(Config &cfg)
{
	cfg.metrics_address.clear();
	cfg.metrics_port = 0;
	if (cfg.metrics_listen.empty())
	{
		if (cfg.port + 1000 > 65535)
			throw ConfigError("metrics_listen", "port + 1000 is no port: set metrics_listen");
		cfg.metrics_address = "127.0.0.1";
		cfg.metrics_port = cfg.port + 1000;
	}
	else if (cfg.metrics_listen != "off")
	{
		std::string why;
		if (!parse_listen(cfg.metrics_listen, &cfg.metrics_address, &cfg.metrics_port, &why))
			throw ConfigError("metrics_listen", "\"" + cfg.metrics_listen + "\": " + why);
		/* Metrics name users' activity and the database's state: not for the world unasked. */
		if (!is_loopback_address(cfg.metrics_address) && cfg.metrics_token.empty())
			throw ConfigError("metrics_listen",
							  "\"" + cfg.metrics_listen +
								  "\" is not loopback: set metrics_token to expose metrics");
		if (cfg.metrics_port == cfg.port && cfg.metrics_address == cfg.listen_address)
			throw ConfigError("metrics_listen", "the same address and port as the listener");
	}
	if (!cfg.metrics_token.empty() && cfg.metrics_token.size() < 16)
		throw ConfigError("metrics_token", "must be at least 16 characters");
	/*
	 * Neither aud nor iss required: any JWT signed with the key is a credential
	 * here, including the application's own session or refresh tokens.  Allowed
	 * on loopback (development; main.cpp warns), refused elsewhere.
	 */
	if (jwt_unscoped(cfg) && !is_loopback_address(cfg.listen_address))
		throw ConfigError("jwt_audience",
						  "auth jwt on a non-loopback listen_address (\"" + cfg.listen_address +
							  "\") needs jwt_audience or jwt_issuer: otherwise any token signed "
							  "with the key is accepted");

	if (cfg.auth == AuthMode::None && !is_loopback_address(cfg.listen_address))
		throw ConfigError("auth",
						  "\"none\" is only allowed when listen_address is loopback (is \"" +
							  cfg.listen_address + "\")");
	if (cfg.reconnect_max_ms < cfg.reconnect_min_ms)
		throw ConfigError("reconnect_max_ms", "smaller than reconnect_min_ms");
	/* A quiet read() takes read_timeout_ms: a shorter age would report a healthy reader as stale.
	 */
	if (cfg.max_read_age_ms != 0 && cfg.max_read_age_ms <= cfg.read_timeout_ms)
		throw ConfigError("max_read_age_ms", "must be larger than read_timeout_ms (or 0)");
	if (cfg.send_queue_bytes < 1024)
		throw ConfigError("send_queue_bytes", "must be at least 1kB");
	if (cfg.max_sockets_per_user > cfg.max_sockets)
		throw ConfigError("max_sockets_per_user", "larger than max_sockets");

	cfg.jwt_key.clear();
	if (cfg.auth == AuthMode::Jwt)
	{
		if (cfg.jwt_alg == "HS256")
		{
			if (!cfg.jwt_secret.empty() && !cfg.jwt_secret_file.empty())
				throw ConfigError("jwt_secret_file", "set either jwt_secret or jwt_secret_file");
			if (!cfg.jwt_secret_file.empty())
			{
				cfg.jwt_key = read_file("jwt_secret_file", cfg.jwt_secret_file);
				while (!cfg.jwt_key.empty() &&
					   (cfg.jwt_key.back() == '\n' || cfg.jwt_key.back() == '\r'))
					cfg.jwt_key.pop_back();
			}
			else
				cfg.jwt_key = cfg.jwt_secret;
			if (cfg.jwt_key.empty())
				throw ConfigError("jwt_secret",
								  "auth jwt with HS256 needs jwt_secret or jwt_secret_file");
			/* RFC 7518 3.2: an HS256 key must be at least as long as the hash. */
			if (cfg.jwt_key.size() < 32)
				throw ConfigError(cfg.jwt_secret_file.empty() ? "jwt_secret" : "jwt_secret_file",
								  "HS256 secret must be at least 32 bytes");
		}
		else
		{
			if (cfg.jwt_public_key_file.empty())
				throw ConfigError("jwt_public_key_file",
								  "auth jwt with RS256 needs a PEM public key");
			cfg.jwt_key = read_file("jwt_public_key_file", cfg.jwt_public_key_file);
			if (cfg.jwt_key.find("-----BEGIN") == std::string::npos)
				throw ConfigError("jwt_public_key_file", "not a PEM file");
		}
	}
	if (cfg.auth == AuthMode::Sql && cfg.auth_query.empty())
		throw ConfigError("auth_query", "auth sql needs a query with $1 = token");
	if (cfg.auth == AuthMode::Sql && cfg.auth_query.find("$1") == std::string::npos)
		throw ConfigError("auth_query", "the query must use $1 for the token");
}

Config
load_config(const CommandLine &cmd, const EnvLookup &env)
{
	Config cfg;
	std::string file = cmd.config_file;
	if (file.empty())
	{
		const char *v = env("LIVENOTIFY_CONFIG");
		if (v)
			file = v;
	}
	if (!file.empty())
		apply_config_text(cfg, read_file("config", file), file);
	apply_environment(cfg, env);
	for (const auto &kv : cmd.settings)
		apply_setting(cfg, kv.first, kv.second);
	validate_config(cfg);
	return cfg;
}

std::string
config_help()
{
	std::string out;
	for (const auto &def : key_table())
	{
		std::string flag = std::string("  --") + def.name;
		std::replace(flag.begin(), flag.end(), '_', '-');
		flag += "=V";
		if (flag.size() < 30)
			flag.resize(30, ' ');
		else
			flag += "\n" + std::string(30, ' ');
		out += flag + def.help + "\n";
	}
	return out;
}

} // namespace livenotify
