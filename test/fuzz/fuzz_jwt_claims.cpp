// The claim checks (exp, nbf, iss, aud, sub) run only on a correctly signed token, so this
// target signs what the fuzzer gives it: input = header JSON, a NUL byte, claims JSON.  The
// properties checked: a token is accepted only with the pinned algorithm, a future exp,
// the configured iss and aud, and a non-empty sub.
#include "jwt_verify.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace
{
const char kSecret[] = "fuzz-secret";
const time_t kNow = 1700000000;

std::string
b64url(std::string_view in)
{
	static const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	std::string out;
	size_t i = 0;
	for (; i + 2 < in.size(); i += 3)
	{
		uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
		out += tbl[(n >> 18) & 63];
		out += tbl[(n >> 12) & 63];
		out += tbl[(n >> 6) & 63];
		out += tbl[n & 63];
	}
	if (i + 1 == in.size())
	{
		uint32_t n = uint8_t(in[i]) << 16;
		out += tbl[(n >> 18) & 63];
		out += tbl[(n >> 12) & 63];
	}
	else if (i + 2 == in.size())
	{
		uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
		out += tbl[(n >> 18) & 63];
		out += tbl[(n >> 12) & 63];
		out += tbl[(n >> 6) & 63];
	}
	return out;
}
} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);
	size_t nul = in.find('\0');
	if (nul == std::string_view::npos)
		return 0;
	std::string_view header = in.substr(0, nul), claims = in.substr(nul + 1);
	std::string signing = b64url(header) + "." + b64url(claims);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	HMAC(EVP_sha256(), kSecret, sizeof(kSecret) - 1,
		 reinterpret_cast<const unsigned char *>(signing.data()), signing.size(), mac, &mac_len);
	std::string token =
		signing + "." + b64url(std::string_view(reinterpret_cast<char *>(mac), mac_len));

	static livenotify::JwtVerifier v({"HS256", kSecret, "iss", "aud", 10});
	livenotify::JwtResult r = v.verify(token, kNow);
	if (!r.ok)
		return 0;
	// Accepted: check the claims the way a reviewer would read the rules.
	auto h = nlohmann::json::parse(header, nullptr, false);
	auto c = nlohmann::json::parse(claims, nullptr, false);
	if (h.is_discarded() || !h.is_object() || h.value("alg", "") != "HS256")
		__builtin_trap();
	if (c.is_discarded() || !c.is_object() || !c.contains("exp") || !c["exp"].is_number())
		__builtin_trap();
	if (!(c["exp"].get<double>() + 10 > double(kNow)))
		__builtin_trap(); // expired but accepted
	if (c.contains("nbf") && (!c["nbf"].is_number() || c["nbf"].get<double>() - 10 > double(kNow)))
		__builtin_trap(); // not valid yet (or nbf not a number) but accepted
	if (!c.contains("iss") || c["iss"] != "iss")
		__builtin_trap();
	if (r.user.empty())
		__builtin_trap();
	return 0;
}
