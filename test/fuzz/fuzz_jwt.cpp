// Tokens as they arrive from a client (?token=, protocol header, first message), against
// an HS256 and an RS256 verifier.  Random bytes almost never carry a valid signature, so
// this exercises decoding and the refusal paths; fuzz_jwt_claims signs its input to reach
// the claim checks.
#include "jwt_verify.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace
{
// A throw-away RSA public key (the private half was discarded): only its shape matters.
const char *kPublicKey = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuXSAUJIIumIU9T4w9x4q
0oFUZLdwH5EJNBYYDdUngNFR5/reGiQwMvxNWxsLqj21KwE0b0ncjHGj4lKoxO1r
hKBaMBeZ4w0wU4TWCf1HAR2kuIHS0YimxckCvjPOp+oAjRS2LvQ2KXPmTrYFgXa3
k+mp8gYvn+tfrFRih5MpqN+BoSQZZwc8R0qSWVqd9FQ69CNl98768WsowZnaPytT
zAmkCkU+wNlRUSJv85U4TVvpb+NxmDW+75MVV/26y3re454AE8iRhgcR6nIChPRM
/89xbI3I/2tMTBf6u/VdlZSY7O11C29R4BX5dYs7l+VxmC+CP0+mITPhoZMrzLie
3wIDAQAB
-----END PUBLIC KEY-----
)";

const livenotify::JwtVerifier &
hs()
{
	// Not the secret the seeds are signed with: no input here carries a valid signature.
	static livenotify::JwtVerifier v({"HS256", "fuzz-verify-secret", "iss", "aud", 10});
	return v;
}
const livenotify::JwtVerifier &
rs()
{
	static livenotify::JwtVerifier v({"RS256", kPublicKey, "", "", 0});
	return v;
}
} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view tok(reinterpret_cast<const char *>(data), size);
	if (hs().verify(tok, 1700000000).ok || rs().verify(tok, 1700000000).ok)
		__builtin_trap(); // no unsigned input can be accepted
	return 0;
}
