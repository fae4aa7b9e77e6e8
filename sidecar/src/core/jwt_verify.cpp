/*
 * jwt_verify.cpp: see jwt_verify.hpp.
 */
#include "jwt_verify.hpp"

#include <jwt.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <memory>

namespace livenotify
{

namespace
{

struct JwtFree
{
	void operator()(jwt_t *j) const
	{
		jwt_free(j);
	}
};

/*
 * The header's "alg" before any signature work, so "none" and algorithm
 * substitution are refused by name rather than by whatever error the library
 * happens to return.  The header is decoded by libjwt itself: jwt_decode with
 * no key parses without verifying.  With no key libjwt 1.10 reports the
 * algorithm as "none" through jwt_get_alg(), so the raw header value is read
 * with jwt_get_header().
 */
std::string
header_alg(const std::string &token, bool *has_crit)
{
	jwt_t *raw = nullptr;
	if (jwt_decode(&raw, token.c_str(), nullptr, 0) != 0 || raw == nullptr)
		return "";
	std::unique_ptr<jwt_t, JwtFree> j(raw);
	/* Any value of "crit" (an array, or something malformed) counts: we implement no extension. */
	char *crit = jwt_get_headers_json(j.get(), "crit");
	*has_crit = crit != nullptr;
	free(crit);
	const char *alg = jwt_get_header(j.get(), "alg");
	return alg ? alg : "";
}

JwtResult
fail(const char *reason)
{
	JwtResult r;
	r.reason = reason;
	return r;
}

} // namespace

JwtVerifier::JwtVerifier(JwtSettings settings) : settings_(std::move(settings))
{
}

JwtResult
JwtVerifier::verify(std::string_view token_view, time_t now) const
{
	if (token_view.empty())
		return fail("missing_token");
	if (token_view.size() > 8192)
		return fail("token_too_long");
	std::string token(token_view);

	bool has_crit = false;
	std::string alg = header_alg(token, &has_crit);
	if (alg.empty())
		return fail("malformed");
	if (alg == "none")
		return fail("alg_none");
	if (alg != settings_.alg)
		return fail("alg_mismatch");
	if (has_crit)
		return fail("crit_unsupported");

	jwt_t *raw = nullptr;
	int rc = jwt_decode(&raw, token.c_str(),
						reinterpret_cast<const unsigned char *>(settings_.key.data()),
						static_cast<int>(settings_.key.size()));
	if (rc != 0 || raw == nullptr)
		return fail("bad_signature");
	std::unique_ptr<jwt_t, JwtFree> j(raw);
	/* Belt and braces: the verified token must carry the pinned algorithm. */
	if (std::string(jwt_alg_str(jwt_get_alg(j.get()))) != settings_.alg)
		return fail("alg_mismatch");

	char *grants = jwt_get_grants_json(j.get(), nullptr);
	if (!grants)
		return fail("malformed");
	nlohmann::json claims = nlohmann::json::parse(grants, nullptr, false);
	free(grants);
	if (claims.is_discarded() || !claims.is_object())
		return fail("malformed");

	/*
	 * Times are compared as doubles, as JSON numbers are: casting a claim to
	 * time_t is undefined past its range, and in practice turned nbf = 1e300
	 * into a large negative number, i.e. "valid since forever".  A claim that
	 * is not finite fails its check.
	 */
	const double now_s = static_cast<double>(now);
	const double leeway = static_cast<double>(settings_.leeway_s);

	/* exp is required: a token that never expires is a standing credential. */
	auto exp = claims.find("exp");
	if (exp == claims.end() || !exp->is_number())
		return fail("missing_exp");
	const double exp_s = exp->get<double>();
	if (!std::isfinite(exp_s) || now_s >= exp_s + leeway)
		return fail("expired");
	/*
	 * A bounded lifetime: exp = 1e300 (or any exp further than max_lifetime_s
	 * from now) is refused, so the socket's expiry timer (admission.cpp) is
	 * always a representable, near deadline.
	 */
	const double max_life = static_cast<double>(settings_.max_lifetime_s);
	if (exp_s - now_s > max_life + leeway)
		return fail("lifetime_too_long");

	/* iat is optional; when present it must be a finite time not in the future. */
	auto iat = claims.find("iat");
	if (iat != claims.end())
	{
		if (!iat->is_number())
			return fail("malformed_iat");
		const double iat_s = iat->get<double>();
		if (!std::isfinite(iat_s) || iat_s > now_s + leeway)
			return fail("bad_iat");
		if (exp_s - iat_s > max_life)
			return fail("lifetime_too_long");
	}

	auto nbf = claims.find("nbf");
	if (nbf != claims.end())
	{
		if (!nbf->is_number())
			return fail("malformed_nbf");
		const double nbf_s = nbf->get<double>();
		if (!std::isfinite(nbf_s) || now_s + leeway < nbf_s)
			return fail("not_yet_valid");
	}

	if (!settings_.issuer.empty())
	{
		auto iss = claims.find("iss");
		if (iss == claims.end() || !iss->is_string() || iss->get<std::string>() != settings_.issuer)
			return fail("wrong_issuer");
	}

	if (!settings_.audience.empty())
	{
		/* RFC 7519 4.1.3: aud is a string or an array of strings. */
		bool match = false;
		auto aud = claims.find("aud");
		if (aud != claims.end())
		{
			if (aud->is_string())
				match = aud->get<std::string>() == settings_.audience;
			else if (aud->is_array())
				for (const auto &a : *aud)
					match = match || (a.is_string() && a.get<std::string>() == settings_.audience);
		}
		if (!match)
			return fail("wrong_audience");
	}

	auto sub = claims.find("sub");
	JwtResult r;
	if (sub == claims.end())
		return fail("missing_sub");
	/* Django user ids are integers; accept a numeric sub and use its text form. */
	if (sub->is_string())
		r.user = sub->get<std::string>();
	else if (sub->is_number_integer())
		r.user = sub->dump();
	else
		return fail("missing_sub");
	if (r.user.empty() || r.user.size() > 256)
		return fail("missing_sub");
	r.exp = exp_s;
	r.ok = true;
	return r;
}

} // namespace livenotify
