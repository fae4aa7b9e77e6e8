/*
 * test_config.cpp: configuration from file, environment and flags.
 */
#include "config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

using namespace livenotify;

namespace
{

const char *kSecret = "0123456789abcdef0123456789abcdef";

EnvLookup
env_of(std::map<std::string, std::string> vars)
{
	auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
	return [shared](const char *name) -> const char * {
		auto it = shared->find(name);
		return it == shared->end() ? nullptr : it->second.c_str();
	};
}

CommandLine
args(std::vector<const char *> v)
{
	v.insert(v.begin(), "livenotifyd");
	return parse_command_line(static_cast<int>(v.size()), v.data());
}

std::string
temp_file(const std::string &content)
{
	char path[] = "/tmp/livenotify-test-XXXXXX";
	int fd = mkstemp(path);
	EXPECT_GE(fd, 0);
	EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
	close(fd);
	return path;
}

std::string
bad_key(const CommandLine &cmd, const EnvLookup &env)
{
	try
	{
		load_config(cmd, env);
	}
	catch (const ConfigError &e)
	{
		return e.key;
	}
	return "<no error>";
}

} // namespace

TEST(Config, DefaultsNeedAJwtSecret)
{
	EXPECT_EQ(bad_key(args({}), env_of({})), "jwt_secret");
}

TEST(Config, DefaultsWithSecret)
{
	Config c = load_config(args({"--jwt-secret", kSecret}), env_of({}));
	EXPECT_EQ(c.port, 8765);
	EXPECT_EQ(c.listen_address, "127.0.0.1");
	EXPECT_EQ(c.ws_path, "/ws");
	EXPECT_EQ(c.send_queue_bytes, 1u << 20);
	EXPECT_EQ(c.auth, AuthMode::Jwt);
	EXPECT_EQ(c.jwt_key, kSecret);
}

TEST(Config, FileThenEnvThenFlags)
{
	std::string file = temp_file("# comment\n"
								 "port = 9000\n"
								 "log_level = debug\n"
								 "allowed_origins = https://a.example, https://b.example\n"
								 "send_queue_bytes = 64kB\n"
								 "max_sockets_per_user = 3\n"
								 "jwt_secret = \"" +
								 std::string(kSecret) + "\"\n");
	Config c = load_config(
		args({"--config", file.c_str(), "--max-sockets-per-user=5"}),
		env_of({{"LIVENOTIFY_PORT", "9100"}, {"LIVENOTIFY_MAX_SOCKETS_PER_USER", "4"}}));
	unlink(file.c_str());
	EXPECT_EQ(c.port, 9100);			  /* env over file */
	EXPECT_EQ(c.max_sockets_per_user, 5); /* flag over env */
	EXPECT_EQ(c.log_level, LogLevel::Debug);
	EXPECT_EQ(c.send_queue_bytes, 64u * 1024);
	ASSERT_EQ(c.allowed_origins.size(), 2u);
	EXPECT_EQ(c.allowed_origins[1], "https://b.example");
}

TEST(Config, ConfigPathFromEnvironment)
{
	std::string file = temp_file("auth = none\nport = 7001\n");
	Config c = load_config(args({}), env_of({{"LIVENOTIFY_CONFIG", file}}));
	unlink(file.c_str());
	EXPECT_EQ(c.port, 7001);
	EXPECT_EQ(c.auth, AuthMode::None);
}

TEST(Config, BadValuesNameTheKey)
{
	EXPECT_EQ(bad_key(args({"--port=0", "--auth=none"}), env_of({})), "port");
	EXPECT_EQ(bad_key(args({"--port=12ab", "--auth=none"}), env_of({})), "port");
	EXPECT_EQ(bad_key(args({"--auth=magic"}), env_of({})), "auth");
	EXPECT_EQ(bad_key(args({"--auth=none", "--log-level=loud"}), env_of({})), "log_level");
	EXPECT_EQ(bad_key(args({"--auth=none"}), env_of({{"LIVENOTIFY_SEND_QUEUE_BYTES", "lots"}})),
			  "send_queue_bytes");
	EXPECT_EQ(bad_key(args({"--auth=none", "--ws-path=ws"}), env_of({})), "ws_path");
	EXPECT_EQ(bad_key(args({"--jwt-alg=HS512"}), env_of({})), "jwt_alg");
}

TEST(Config, UnknownKeysAreErrors)
{
	try
	{
		args({"--no-such-key=1"});
		ADD_FAILURE() << "no error";
	}
	catch (const ConfigError &e)
	{
		EXPECT_EQ(e.key, "no_such_key");
	}
	std::string file = temp_file("auth = none\nbogus = 1\n");
	EXPECT_EQ(bad_key(args({"-c", file.c_str()}), env_of({})), "bogus");
	unlink(file.c_str());
}

TEST(Config, MissingFileIsAnError)
{
	EXPECT_EQ(bad_key(args({"--config=/nonexistent/livenotifyd.conf"}), env_of({})), "config");
}

TEST(Config, AuthNoneOnlyOnLoopback)
{
	EXPECT_NO_THROW(load_config(args({"--auth=none"}), env_of({})));
	EXPECT_NO_THROW(load_config(args({"--auth=none", "--listen-address=::1"}), env_of({})));
	EXPECT_EQ(bad_key(args({"--auth=none", "--listen-address=0.0.0.0"}), env_of({})), "auth");
	EXPECT_EQ(bad_key(args({"--auth=none", "--listen-address=10.1.2.3"}), env_of({})), "auth");
	/* Issue 12, finding 9: a name that starts like 127/8 is a name, not loopback. */
	EXPECT_EQ(bad_key(args({"--auth=none", "--listen-address=127.attacker.invalid"}), env_of({})),
			  "auth");
	EXPECT_EQ(bad_key(args({"--auth=none", "--listen-address=127.0.0.1.nip.invalid"}), env_of({})),
			  "auth");
	EXPECT_NO_THROW(load_config(args({"--auth=none", "--listen-address=127.3.4.5"}), env_of({})));
	EXPECT_NO_THROW(load_config(args({"--auth=none", "--listen-address=[::1]"}), env_of({})));
	EXPECT_NO_THROW(load_config(args({"--auth=none", "--listen-address=localhost"}), env_of({})));
	EXPECT_FALSE(is_loopback_address("127."));
	EXPECT_FALSE(is_loopback_address("::"));
	EXPECT_FALSE(is_loopback_address(""));
}

TEST(Config, AdmissionDeadlinesAndAddressLimits)
{
	Config c = load_config(args({"--jwt-secret", kSecret}), env_of({}));
	EXPECT_EQ(c.auth_timeout_ms, 3000);
	EXPECT_EQ(c.upgrade_timeout_s, 5);
	EXPECT_EQ(c.max_sockets_per_address, 2048);
	EXPECT_EQ(c.max_pending_auth_per_address, 32);
	EXPECT_TRUE(c.trusted_proxies.empty());
	c = load_config(args({"--auth=none", "--trusted-proxies=10.0.0.0/8, 192.0.2.7,2001:db8::/32",
						  "--upgrade-timeout-s=2", "--max-pending-auth-per-address=4"}),
					env_of({}));
	ASSERT_EQ(c.trusted_proxies.size(), 3u);
	EXPECT_TRUE(c.trusted_proxies[1].contains(*IpAddress::parse("192.0.2.7")));
	EXPECT_FALSE(c.trusted_proxies[1].contains(*IpAddress::parse("192.0.2.8")));
	EXPECT_EQ(c.upgrade_timeout_s, 2);
	EXPECT_EQ(c.max_pending_auth_per_address, 4);
	EXPECT_EQ(bad_key(args({"--auth=none", "--trusted-proxies=proxy.example"}), env_of({})),
			  "trusted_proxies");
	EXPECT_EQ(bad_key(args({"--auth=none", "--trusted-proxies=10.0.0.0/33"}), env_of({})),
			  "trusted_proxies");
	EXPECT_EQ(bad_key(args({"--auth=none", "--upgrade-timeout-s=0"}), env_of({})),
			  "upgrade_timeout_s");
}

TEST(Config, JwtKeyChecks)
{
	EXPECT_EQ(bad_key(args({"--jwt-secret=short"}), env_of({})), "jwt_secret");
	EXPECT_EQ(bad_key(args({"--jwt-alg=RS256"}), env_of({})), "jwt_public_key_file");
	std::string notpem = temp_file("hello\n");
	EXPECT_EQ(
		bad_key(args({"--jwt-alg=RS256", "--jwt-public-key-file", notpem.c_str()}), env_of({})),
		"jwt_public_key_file");
	unlink(notpem.c_str());
	std::string secret = temp_file(std::string(kSecret) + "\n");
	Config c = load_config(args({"--jwt-secret-file", secret.c_str()}), env_of({}));
	unlink(secret.c_str());
	EXPECT_EQ(c.jwt_key, kSecret); /* newline stripped */
}

TEST(Config, SqlModeNeedsAParameterisedQuery)
{
	EXPECT_EQ(bad_key(args({"--auth=sql"}), env_of({})), "auth_query");
	EXPECT_EQ(bad_key(args({"--auth=sql", "--auth-query=SELECT 1"}), env_of({})), "auth_query");
	Config c =
		load_config(args({"--auth=sql",
						  "--auth-query=SELECT user_id::text FROM authtoken_token WHERE key = $1"}),
					env_of({}));
	EXPECT_EQ(c.auth, AuthMode::Sql);
}

TEST(Config, CommandLineActions)
{
	CommandLine c = args({"--help", "--version", "--check-config"});
	EXPECT_TRUE(c.help);
	EXPECT_TRUE(c.version);
	EXPECT_TRUE(c.check_config);
	EXPECT_THROW(args({"--port"}), ConfigError);
	EXPECT_THROW(args({"stray"}), ConfigError);
}

TEST(Config, HelpListsEveryKey)
{
	std::string h = config_help();
	EXPECT_NE(h.find("--listen-address"), std::string::npos);
	EXPECT_NE(h.find("--send-queue-bytes"), std::string::npos);
	EXPECT_NE(h.find("--auth-query"), std::string::npos);
}

TEST(Config, DatabaseDeadlines)
{
	Config c = load_config(args({"--auth=none"}), env_of({}));
	EXPECT_EQ(c.db_timeout_ms, 5000);
	EXPECT_EQ(c.max_read_age_ms, 0);
	/* Derived: a quiet read() takes read_timeout_ms, a hung one is dropped db_timeout_ms later. */
	EXPECT_EQ(effective_max_read_age_ms(c), 15000);
	c = load_config(args({"--auth=none", "--db-timeout-ms=700", "--read-timeout-ms=2000"}),
					env_of({}));
	EXPECT_EQ(effective_max_read_age_ms(c), 2700);
	c = load_config(args({"--auth=none", "--max-read-age-ms=30000"}), env_of({}));
	EXPECT_EQ(effective_max_read_age_ms(c), 30000);
	EXPECT_EQ(bad_key(args({"--auth=none", "--db-timeout-ms=50"}), env_of({})), "db_timeout_ms");
	/* Not above read_timeout_ms: every quiet period would be reported as a hung database. */
	EXPECT_EQ(bad_key(args({"--auth=none", "--max-read-age-ms=10000"}), env_of({})),
			  "max_read_age_ms");
}

TEST(Config, HostileClientLimits)
{
	/* Defaults (docs/operations.md): bounded, and a resume burst above max_sockets_per_user. */
	Config d = load_config(args({"--auth=none"}), env_of({}));
	EXPECT_EQ(d.client_message_rate, 10);
	EXPECT_EQ(d.client_message_burst, 20);
	EXPECT_EQ(d.resume_rate, 2);
	EXPECT_EQ(d.resume_burst, 32);
	EXPECT_GE(d.resume_burst, d.max_sockets_per_user);
	EXPECT_EQ(d.catchup_queue_max, 1024);
	Config c = load_config(args({"--auth=none", "--client-message-rate=5", "--resume-burst=4",
								 "--catchup-queue-max=8"}),
						   env_of({{"LIVENOTIFY_RESUME_RATE", "7"}}));
	EXPECT_EQ(c.client_message_rate, 5);
	EXPECT_EQ(c.resume_burst, 4);
	EXPECT_EQ(c.resume_rate, 7);
	EXPECT_EQ(c.catchup_queue_max, 8);
	EXPECT_EQ(bad_key(args({"--auth=none", "--client-message-rate=0"}), env_of({})),
			  "client_message_rate");
	EXPECT_EQ(bad_key(args({"--auth=none", "--catchup-queue-max=0"}), env_of({})),
			  "catchup_queue_max");
}

/* Issue 12, finding 6: metrics on their own listener, loopback unless a token guards them. */
TEST(Config, MetricsListener)
{
	Config c = load_config(args({"--jwt-secret", kSecret}), env_of({}));
	EXPECT_EQ(c.metrics_address, "127.0.0.1");
	EXPECT_EQ(c.metrics_port, 9765); /* port + 1000 */
	c = load_config(args({"--jwt-secret", kSecret, "--port=8766"}), env_of({}));
	EXPECT_EQ(c.metrics_port, 9766);
	EXPECT_EQ(bad_key(args({"--jwt-secret", kSecret, "--port=65000"}), env_of({})),
			  "metrics_listen");
	c = load_config(args({"--jwt-secret", kSecret, "--port=65000", "--metrics-listen=off"}),
					env_of({}));
	EXPECT_EQ(c.metrics_port, 0);
	c = load_config(args({"--jwt-secret", kSecret, "--metrics-listen=[::1]:9100"}), env_of({}));
	EXPECT_EQ(c.metrics_address, "::1");
	EXPECT_EQ(c.metrics_port, 9100);
	c = load_config(args({"--jwt-secret", kSecret, "--metrics-listen=off"}), env_of({}));
	EXPECT_EQ(c.metrics_port, 0);
	for (const char *bad : {"--metrics-listen=127.0.0.1", "--metrics-listen=:9100",
							"--metrics-listen=127.0.0.1:", "--metrics-listen=127.0.0.1:0",
							"--metrics-listen=127.0.0.1:70000", "--metrics-listen=::1:9100",
							"--metrics-listen=127.0.0.1:9x", "--metrics-listen=127.0.0.1:8765",
							"--metrics-listen=0.0.0.0:9100", "--metrics-listen=10.0.0.1:9100"})
		EXPECT_EQ(bad_key(args({"--jwt-secret", kSecret, bad}), env_of({})), "metrics_listen")
			<< bad;
	/* Not loopback: only with a bearer token, and a token of some length. */
	c = load_config(args({"--jwt-secret", kSecret, "--metrics-listen=0.0.0.0:9100"}),
					env_of({{"LIVENOTIFY_METRICS_TOKEN", "0123456789abcdef"}}));
	EXPECT_EQ(c.metrics_address, "0.0.0.0");
	EXPECT_EQ(bad_key(args({"--jwt-secret", kSecret, "--metrics-token=short"}), env_of({})),
			  "metrics_token");
}

/* Issue 12, finding 7: unscoped JWTs only on loopback; the lifetime bound is a setting. */
TEST(Config, JwtScopeAndLifetime)
{
	Config c = load_config(args({"--jwt-secret", kSecret}), env_of({}));
	EXPECT_TRUE(jwt_unscoped(c));
	EXPECT_EQ(c.jwt_max_lifetime_s, 86400);
	EXPECT_EQ(bad_key(args({"--jwt-secret", kSecret, "--listen-address=0.0.0.0"}), env_of({})),
			  "jwt_audience");
	c = load_config(args({"--jwt-secret", kSecret, "--listen-address=0.0.0.0", "--jwt-audience=a"}),
					env_of({}));
	EXPECT_FALSE(jwt_unscoped(c));
	c = load_config(args({"--jwt-secret", kSecret, "--listen-address=0.0.0.0", "--jwt-issuer=i"}),
					env_of({}));
	EXPECT_FALSE(jwt_unscoped(c));
	/* Other auth modes have no claims to scope. */
	c = load_config(args({"--auth=sql", "--auth-query=SELECT $1", "--listen-address=0.0.0.0"}),
					env_of({}));
	EXPECT_FALSE(jwt_unscoped(c));
	c = load_config(args({"--jwt-secret", kSecret, "--jwt-max-lifetime-s=3600"}), env_of({}));
	EXPECT_EQ(c.jwt_max_lifetime_s, 3600);
	EXPECT_EQ(bad_key(args({"--jwt-secret", kSecret, "--jwt-max-lifetime-s=10"}), env_of({})),
			  "jwt_max_lifetime_s");
}
