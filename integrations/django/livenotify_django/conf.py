"""The LIVENOTIFY setting, read once per call (so override_settings works in tests)."""
from django.conf import settings

DEFAULTS = {
    "URL": None,  # the daemon's WebSocket URL as the browser reaches it: "wss://app.example/ws" or "/ws"
    "JWT_ALGORITHM": "HS256",  # HS256 (shared secret) or RS256 (private key here, public key at the daemon)
    "JWT_KEY": None,  # HS256: the daemon's jwt_secret (>= 32 bytes); RS256: the PEM private key
    "JWT_KEY_FILE": None,  # or a file holding it
    "AUDIENCE": None,  # the daemon's jwt_audience
    "ISSUER": None,  # the daemon's jwt_issuer
    "TOKEN_LIFETIME": 300,  # seconds; at most the daemon's jwt_max_lifetime_s (24 h by default)
    "TOKEN_URL": None,  # where the template tag tells the client to fetch tokens (default: reverse())
}

ALGORITHMS = ("HS256", "RS256")
# The daemon refuses a shorter HS256 secret at startup (docs/operations.md, jwt_secret).
MIN_SECRET_BYTES = 32
# The daemon's default jwt_max_lifetime_s.
DAEMON_MAX_LIFETIME = 86400


def get():
    conf = dict(DEFAULTS)
    conf.update(getattr(settings, "LIVENOTIFY", None) or {})
    return conf


def jwt_key(conf=None):
    """The signing key: JWT_KEY, or the contents of JWT_KEY_FILE."""
    conf = conf or get()
    if conf.get("JWT_KEY"):
        return conf["JWT_KEY"]
    if conf.get("JWT_KEY_FILE"):
        with open(conf["JWT_KEY_FILE"], "rb") as f:
            return f.read()
    return None
