/*
 * test_jwt.cpp: JWT verification cases.  Tokens are minted with libjwt itself.
 */
#include "jwt_verify.hpp"

#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>
#include <map>

using namespace livenotify;

namespace
{

const std::string kSecret = "0123456789abcdef0123456789abcdef-test";
const time_t kNow = 1800000000;

/* A 2048-bit RSA key pair made for these tests only (openssl genrsa); it protects nothing. */
const char *kPrivatePem = R"PEM(
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCtKB3yWGszQc90
EDZ02HGBmLg+FSFNTyhbreHPvno4OdQwMW+UJqdGZMsNF7dlvuNawcP3C7Hxp7qT
FKrH9TWCuY5kXtaGNu4NUDGUrgGXJ/TAem44iIoDhp4rE+1rp3O8CVbAjcD2HluO
OrBAu1/j8VqYzgjaKysXGKZ2qbtDOLmV4ERCXePaudQxmvahPDPdkpNk3aN5jrYl
BwTGnMT5/e7/PzYnYjnNNahWuTTbPpzPbCzskA58C1/samaTgwTDTQuYc80R1oH0
8/cgnwKjpk8cEd38ap3fdrADr8y0E6bSyvpxvcZiA6Ao7DsSvllDQrumQ29+wj+4
EgL0Obg7AgMBAAECggEAM7LJliS+BPS+Kqn4iFRjN01QnQCUC8/5fb3hsLPvK8Bg
UO9BoBsWUFchpMwS7qbanKtDhgwQ2dS5SNaf0smsa1ZZZDBInpPh6UmrM/fr86Rz
V9B1/h0OD9VuffAaL800Kc0kAKOSHCmeLk3pd7o5/AWAhiTl0bWXzPKIKN+uUHgt
zRuoQzB8d3Mg13KCWVgqdTxm3VahMpe0PcRuTClGEvemCR2gKbu3fxTVsW5wIVaj
RNCgznA9qdd8x4m8IyH6JC0lwtd/hGpf/f0luRIZOnvSDhm0y7oyDhuip1fQAnee
OZ1m4S6+SD/5tXSNXYCf2Z8fHfvOy33dmsOSbKHcyQKBgQDp7NCjmeyWPCxgJDi4
cMjA+vYaV4/tCs+Gu2965DbTeiRzTPjFPQOzfhNU1c7ejOZGKlZGk8SIb1fIkGj+
C3Yc6vQ+1jBRun0zsPuM61wLIfRptkeR5TWfN9nsiMOKLDuQKIPULpvbza5CwC85
AJ4jl081JjYv0fKcwSytLLwUZQKBgQC9f0EJxVVtYuXx079YlIFEa9s7Xioojg5r
Z/X5AXn/NR8jbUCaMD+bHTeW5FVTGoMjj9pPfv9br1m9jJBVgpfb+gGdJiadjhcw
0sxkvITCMqUvaR3SczIKcFOa7CBM6kLdb5q7XUp0ituZfrBHym4C2mWuIMR012oi
rMbjTFJAHwKBgHVUEUWtg4vK/JrwL/7amuaoOV33AzpqjLJQOtcRtioV/khSmAgd
1Uhm+P05DDx1wV36CDH4FcA00HvJas/ZIdHZSs5lkfC8L+YIY/NHbXAsBLIs+fLE
W0PTuJs58ZHRI8Lnf0+iXQw/OqNCT60wkSDa2KCY3N7ZV+2lumnVoTQ9AoGAfhZp
WS4DnKg8pn8lh7Qwmy1FD6ilVpzHPXJMOaZg3Y4kLPdqD+5gtD5pma5Ok+BFN+lk
8pZnJUN06+nWs/8UOpuMbVtQQG+mQKdStwi1MV5viS9hV4Gs30NEbgYFrAgH+71h
8J+vhgJLAkRI2Uv5jU5yb71/2trm1TGvmNhUtjMCgYEA1xU+J9ItBlxClJ3r0q0L
/aR5dZKR10AL/EH9UyDHk9xe9wLRgVDAiwK6SX3DK5MrKyVbW57JZE2rSbu08vLV
JGP6nnJTlmfkInNOCmyrdmTqhFcMJlIxkbvSkGJfh9btcUegqKl95wO7Aogtq4u+
5AibbR4aBakM30apEJ4Vl7A=
-----END PRIVATE KEY-----
)PEM";
const char *kPublicPem = R"PEM(
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArSgd8lhrM0HPdBA2dNhx
gZi4PhUhTU8oW63hz756ODnUMDFvlCanRmTLDRe3Zb7jWsHD9wux8ae6kxSqx/U1
grmOZF7WhjbuDVAxlK4Blyf0wHpuOIiKA4aeKxPta6dzvAlWwI3A9h5bjjqwQLtf
4/FamM4I2isrFximdqm7Qzi5leBEQl3j2rnUMZr2oTwz3ZKTZN2jeY62JQcExpzE
+f3u/z82J2I5zTWoVrk02z6cz2ws7JAOfAtf7Gpmk4MEw00LmHPNEdaB9PP3IJ8C
o6ZPHBHd/Gqd33awA6/MtBOm0sr6cb3GYgOgKOw7Er5ZQ0K7pkNvfsI/uBIC9Dm4
OwIDAQAB
-----END PUBLIC KEY-----
)PEM";
/* A second, unrelated private key: a valid signature by the wrong key. */
const char *kOtherPrivatePem = R"PEM(
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC83qxQyKQgef2b
vmyuaB9ZojaaPPI4xGFanEDVaIk4247tk/mDv8ICp2lyqoqvv7pw4dYad27X4qlo
Vs2djF3eIKcC+gAPCCMThITECf0cVhzSyGjTv9NVFTdc7PFzhbG5w6FH5qgnhsu/
7awd+MFyMowUtm5H8u34Obz7TQGmgC4tStvZ1NQ09nr5eGMpAkrPpPxwdZ74dcGL
3ZKCX9c2aURcUXyk+x/sQbMf/ZlPOhahsdXIRXQj8LcFcHzouqYPWTpIe687JtTZ
WyjQj4ZLJImwUuDjg6xZRxc+eCGZX2nHu3cAItPpOkNjpSvwf56iwFKWsAzv62js
hVcDTt3nAgMBAAECggEAAO+GzFencym84eVNmzI/hYLSNm1liHZ17QGn0zworIlv
PyoOgGKWJCE5hSyRx1EcgVanvYsol2qItaWdxdFeMwLXu6IKwghOSYMh4pQSFu6D
nLUKypHBYEMx+lnfewJci7O2ZtQeXSPDz/hDdAU5dXFeqZ5FvuwrKvb47V3HoPrb
Y5Njcwi+cyDkhB9QLqpJfRGicUtFuNFMrR6k7ZZrxI3zL/3Q8Sm4rjGZlv2sXRsi
bTXoKiUKJwoHSNeU9O6ldqPlaaJqWMHa7SeGM4p/pZZEj2iiMq9oLW0rSaLuptic
/Dcs0KYHLp49EhTf0XaNZGjbG35cC/9rNE9ukOLHcQKBgQD20gtAH589fo8uYHKH
zynX95ykVzOCRkXhjfzXHOklR9jgExqkAo7U0gnhP9xVwnNuOAX4WPoUM9nBw73V
6LMza3ywADVxqNOBNykD+xd9E+m3IoLbknrmFAAPKGDoqHx1AfmkXXPEYTID30iy
+f+q8fVCflJPBVxO9gFyFetMAwKBgQDD5OLO6NdgJMlahCF6HpnF4akO0wsq0XKC
F6VLPxPaKi/fVp2qp66moqujJp/u1CMEqH0MLbARjR8dC+wb0Y7CDX/7JTCz+TJ1
iBU26v64uJx7BcZX25inH/HWCdO1sullqcU3LVImrUkmjusB5WLkNqSLWfgf7y+I
kRXdUUGrTQKBgD8168uwTYfiMake6jX9yCmXMHamHnrupFbvliFBNjRmAhTgz6HR
ReMbJ4yYXkVYV1eS4XSI1QL3hH0rNCLkRYCVtokchJNnOUOObOKoG4vc3a4ZGIpD
KVZjKOC45pivDbCpoNWHWW6htb1oIaY0gFW3QaiV0V6LcOiH+DbPhkMhAoGBAI0r
nJvZxqR9vjGh+PIlrVGifw+03V5dFDVWTwN8EJVvQ5Kiu/ro3n8tyZ1Iz4bwj8/i
kEM/hZwQZDSti9i8WzHTQsC9m2yHkGqMyCUMksaSHAq4LajREyCVb9V8vXo61eIy
x3ItEf/Xb1j/M7LpGSw3iLr3+k0hNNMpI2WcEkQdAoGAJikM4e7uUZe82G2Bh1m/
yd+BsAHSnZYPo5jVcAs4iqZq/Hfe6J+Hz9VOFFxLOPDyqYOIkNFve94dzgOlMVgJ
I8X3omKbsA0K5Xqg+QTYrVwLBUYokBM2IpLZ8Y/8UafYlE1Iw6ywM7sNz+GXb+yZ
u9WrX2wWbIULpc0ftwSk+UI=
-----END PRIVATE KEY-----
)PEM";

struct Claims
{
	std::map<std::string, std::string> str;
	std::map<std::string, long> num;
	std::string raw_json; /* extra grants as JSON, e.g. an aud array */
};

std::string
mint(jwt_alg_t alg, const std::string &key, const Claims &c)
{
	jwt_t *j = nullptr;
	EXPECT_EQ(jwt_new(&j), 0);
	for (const auto &kv : c.str)
		jwt_add_grant(j, kv.first.c_str(), kv.second.c_str());
	for (const auto &kv : c.num)
		jwt_add_grant_int(j, kv.first.c_str(), kv.second);
	if (!c.raw_json.empty())
		jwt_add_grants_json(j, c.raw_json.c_str());
	EXPECT_EQ(jwt_set_alg(j, alg,
						  alg == JWT_ALG_NONE ? nullptr
											  : reinterpret_cast<const unsigned char *>(key.data()),
						  alg == JWT_ALG_NONE ? 0 : static_cast<int>(key.size())),
			  0);
	char *s = jwt_encode_str(j);
	std::string out = s ? s : "";
	free(s);
	jwt_free(j);
	return out;
}

Claims
good_claims()
{
	Claims c;
	c.str["sub"] = "42";
	c.str["iss"] = "https://app.example";
	c.str["aud"] = "livenotify";
	c.num["exp"] = kNow + 300;
	c.num["nbf"] = kNow - 10;
	return c;
}

JwtVerifier
hs_verifier()
{
	return JwtVerifier({"HS256", kSecret, "https://app.example", "livenotify", 10});
}

JwtVerifier
rs_verifier()
{
	return JwtVerifier({"RS256", kPublicPem, "https://app.example", "livenotify", 10});
}

std::string
reason(const JwtVerifier &v, const std::string &token)
{
	JwtResult r = v.verify(token, kNow);
	return r.ok ? "ok:" + r.user : r.reason;
}

} // namespace

TEST(Jwt, ValidHs256)
{
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, good_claims())), "ok:42");
}

TEST(Jwt, ValidRs256)
{
	EXPECT_EQ(reason(rs_verifier(), mint(JWT_ALG_RS256, kPrivatePem, good_claims())), "ok:42");
}

TEST(Jwt, Expired)
{
	Claims c = good_claims();
	c.num["exp"] = kNow - 60;
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "expired");
}

TEST(Jwt, ExpiredWithinLeewayIsAccepted)
{
	Claims c = good_claims();
	c.num["exp"] = kNow - 5;
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "ok:42");
}

TEST(Jwt, MissingExpIsRejected)
{
	Claims c = good_claims();
	c.num.erase("exp");
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "missing_exp");
}

TEST(Jwt, NotYetValid)
{
	Claims c = good_claims();
	c.num["nbf"] = kNow + 120;
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "not_yet_valid");
}

TEST(Jwt, TimeClaimsOutOfTime_tRangeAreCompared)
{
	/* Signed tokens whose nbf/exp overflow a time_t: compared as numbers, never cast. */
	struct Case
	{
		const char *grants;
		const char *want;
	} cases[] = {
		{R"({"nbf":1e300})", "not_yet_valid"}, {R"({"nbf":9.3e18})", "not_yet_valid"},
		{R"({"nbf":-1e300})", "ok:42"},		   {R"({"exp":-1e300})", "expired"},
		{R"({"exp":-9.3e18})", "expired"},	   {R"({"exp":1e300})", "lifetime_too_long"},
	};
	for (const auto &tc : cases)
	{
		Claims c = good_claims();
		c.num.erase("nbf");
		if (std::string(tc.grants).find("exp") != std::string::npos)
			c.num.erase("exp");
		c.raw_json = tc.grants;
		EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), tc.want) << tc.grants;
	}
}

TEST(Jwt, BadSignatureHs256)
{
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret + "x", good_claims())),
			  "bad_signature");
}

TEST(Jwt, BadSignatureRs256)
{
	EXPECT_EQ(reason(rs_verifier(), mint(JWT_ALG_RS256, kOtherPrivatePem, good_claims())),
			  "bad_signature");
}

TEST(Jwt, TamperedPayload)
{
	std::string t = mint(JWT_ALG_HS256, kSecret, good_claims());
	Claims c = good_claims();
	c.str["sub"] = "1";
	std::string other = mint(JWT_ALG_HS256, "another-secret-another-secret-xx", c);
	/* header + other's payload + original signature */
	size_t d1 = t.find('.'), d2 = t.rfind('.');
	size_t o1 = other.find('.'), o2 = other.rfind('.');
	std::string forged = t.substr(0, d1) + other.substr(o1, o2 - o1) + t.substr(d2);
	EXPECT_EQ(reason(hs_verifier(), forged), "bad_signature");
}

TEST(Jwt, AlgNoneRejected)
{
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_NONE, "", good_claims())), "alg_none");
	EXPECT_EQ(reason(rs_verifier(), mint(JWT_ALG_NONE, "", good_claims())), "alg_none");
}

TEST(Jwt, AlgConfusionRejected)
{
	/* HS256 "signed" with the RS256 public key as the HMAC secret. */
	EXPECT_EQ(reason(rs_verifier(), mint(JWT_ALG_HS256, kPublicPem, good_claims())),
			  "alg_mismatch");
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS512, kSecret, good_claims())), "alg_mismatch");
}

TEST(Jwt, WrongAudience)
{
	Claims c = good_claims();
	c.str["aud"] = "someone-else";
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "wrong_audience");
	c.str.erase("aud");
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "wrong_audience");
}

TEST(Jwt, AudienceArray)
{
	Claims c = good_claims();
	c.str.erase("aud");
	c.raw_json = R"({"aud":["other","livenotify"]})";
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "ok:42");
}

TEST(Jwt, WrongIssuer)
{
	Claims c = good_claims();
	c.str["iss"] = "https://evil.example";
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "wrong_issuer");
}

TEST(Jwt, IssuerAndAudienceOptional)
{
	JwtVerifier v({"HS256", kSecret, "", "", 0});
	Claims c = good_claims();
	c.str.erase("iss");
	c.str.erase("aud");
	EXPECT_EQ(reason(v, mint(JWT_ALG_HS256, kSecret, c)), "ok:42");
}

TEST(Jwt, MissingSub)
{
	Claims c = good_claims();
	c.str.erase("sub");
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "missing_sub");
}

TEST(Jwt, NumericSubIsTheUser)
{
	Claims c = good_claims();
	c.str.erase("sub");
	c.num["sub"] = 7;
	EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), "ok:7");
}

TEST(Jwt, GarbageNeverCrashes)
{
	JwtVerifier v = hs_verifier();
	for (const char *t : {"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "eyJ.eyJ.sig",
						  "not a token at all", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"})
		EXPECT_FALSE(v.verify(t, kNow).ok) << t;
	EXPECT_FALSE(v.verify(std::string(20000, 'a'), kNow).ok);
}

/* Issue 12, finding 7: a bounded lifetime (default 24 h), iat checked, crit refused. */
TEST(Jwt, LifetimeIsBounded)
{
	struct Case
	{
		const char *grants;
		const char *want;
	} cases[] = {
		{R"({"exp":1e300})", "lifetime_too_long"},
		{R"({"exp":1.7e308})", "lifetime_too_long"},
		{R"({"exp":1800172810})", "lifetime_too_long"},					 /* now + 2 days */
		{R"({"exp":1800086400})", "ok:42"},								 /* now + 24 h exactly */
		{R"({"exp":1800086411})", "lifetime_too_long"},					 /* past 24 h + leeway */
		{R"({"exp":1800000300,"iat":1700000000})", "lifetime_too_long"}, /* exp - iat */
		{R"({"exp":1800000300,"iat":1799999000})", "ok:42"},
		{R"({"exp":1800000300,"iat":1800000100})", "bad_iat"}, /* issued in the future */
		{R"({"exp":1800000300,"iat":1e300})", "bad_iat"},
		{R"({"exp":1800000300,"iat":"yesterday"})", "malformed_iat"},
	};
	for (const auto &tc : cases)
	{
		Claims c = good_claims();
		c.num.erase("exp");
		c.raw_json = tc.grants;
		EXPECT_EQ(reason(hs_verifier(), mint(JWT_ALG_HS256, kSecret, c)), tc.want) << tc.grants;
	}
	/* The bound is a setting. */
	JwtVerifier hour({"HS256", kSecret, "https://app.example", "livenotify", 10, 3600});
	Claims c = good_claims();
	c.num["exp"] = kNow + 7200;
	EXPECT_EQ(reason(hour, mint(JWT_ALG_HS256, kSecret, c)), "lifetime_too_long");
	c.num["exp"] = kNow + 1800;
	EXPECT_EQ(reason(hour, mint(JWT_ALG_HS256, kSecret, c)), "ok:42");
}

TEST(Jwt, NumbersBeyondDoubleAreRefused)
{
	/* 1e400 is no finite double: whatever parses it, the token is not accepted. */
	Claims c = good_claims();
	c.num.erase("exp");
	c.raw_json = R"({"exp":1e400})";
	EXPECT_FALSE(hs_verifier().verify(mint(JWT_ALG_HS256, kSecret, c), kNow).ok);
}

TEST(Jwt, ExpIsReturned)
{
	JwtResult r = hs_verifier().verify(mint(JWT_ALG_HS256, kSecret, good_claims()), kNow);
	ASSERT_TRUE(r.ok);
	EXPECT_EQ(r.exp, static_cast<double>(kNow + 300));
}

TEST(Jwt, CritHeaderIsRefused)
{
	for (const char *crit : {R"({"crit":["exp"],"exp":1})", R"({"crit":[]})", R"({"crit":"b64"})"})
	{
		jwt_t *j = nullptr;
		ASSERT_EQ(jwt_new(&j), 0);
		Claims c = good_claims();
		for (const auto &kv : c.str)
			jwt_add_grant(j, kv.first.c_str(), kv.second.c_str());
		for (const auto &kv : c.num)
			jwt_add_grant_int(j, kv.first.c_str(), kv.second);
		ASSERT_EQ(jwt_add_headers_json(j, crit), 0) << crit;
		ASSERT_EQ(jwt_set_alg(j, JWT_ALG_HS256,
							  reinterpret_cast<const unsigned char *>(kSecret.data()),
							  static_cast<int>(kSecret.size())),
				  0);
		char *s = jwt_encode_str(j);
		std::string token = s ? s : "";
		free(s);
		jwt_free(j);
		EXPECT_EQ(reason(hs_verifier(), token), "crit_unsupported") << crit;
	}
}
