"""Short-lived JWTs for livenotifyd (docs/protocol.md, "JWT rules")."""
import time

import jwt  # PyJWT (Debian: python3-jwt); RS256 also needs cryptography

from . import conf, user_key


def issue_token(user, lifetime=None):
    """(token, exp) for `user`: sub = the user key, aud/iss as configured, iat now, exp
    lifetime seconds later.  The daemon checks the signature, aud, iss, exp, and that exp - iat
    is within its jwt_max_lifetime_s."""
    c = conf.get()
    now = int(time.time())
    exp = now + int(lifetime if lifetime is not None else c["TOKEN_LIFETIME"])
    claims = {"sub": user_key(user), "iat": now, "exp": exp}
    if c["AUDIENCE"]:
        claims["aud"] = c["AUDIENCE"]
    if c["ISSUER"]:
        claims["iss"] = c["ISSUER"]
    token = jwt.encode(claims, conf.jwt_key(c), algorithm=c["JWT_ALGORITHM"])
    return token, exp
