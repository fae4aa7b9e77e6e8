/*
 * jwt_verify.hpp: JWT verification through libjwt (Debian libjwt-dev 1.10).
 *
 * libjwt checks the signature; libjwt 1.10 has no claim validation API, so the
 * claims (exp, nbf, iat, iss, aud, sub) are checked here on the decoded
 * payload, which nlohmann/json parses.  The configured algorithm is pinned: a
 * token whose header names another algorithm (including "none", or HS256
 * signed with an RS256 public key as the secret) is rejected.  A header with
 * "crit" is rejected (RFC 7515 4.1.11: a recipient that does not understand
 * every listed extension must refuse the token, and we understand none).  A
 * token valid for longer than max_lifetime_s (exp - now, or exp - iat) is
 * rejected: a stolen long-lived token would be a standing credential.
 *
 * Thread: any; a JwtVerifier is immutable after construction.
 */
#pragma once

#include <ctime>
#include <string>
#include <string_view>

namespace livenotify
{

struct JwtSettings
{
	std::string alg;	  /* "HS256" or "RS256" */
	std::string key;	  /* HS256 secret or RS256 PEM public key */
	std::string issuer;	  /* empty: not checked */
	std::string audience; /* empty: not checked */
	long leeway_s = 0;
	long max_lifetime_s = 86400; /* longest exp - now and exp - iat accepted */
};

struct JwtResult
{
	bool ok = false;
	std::string user;	/* the sub claim, when ok */
	std::string reason; /* short machine-friendly reason when !ok, e.g. "expired" */
	double exp = 0;		/* the exp claim (seconds since the epoch), when ok */
};

class JwtVerifier
{
public:
	explicit JwtVerifier(JwtSettings settings);

	/* now: seconds since the epoch (a parameter so tests control the clock). */
	JwtResult verify(std::string_view token, time_t now) const;

	const JwtSettings &settings() const
	{
		return settings_;
	}

private:
	JwtSettings settings_;
};

} // namespace livenotify
