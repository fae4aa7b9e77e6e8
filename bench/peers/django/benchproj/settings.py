"""Settings of the seed-stack peer: the smallest Django project that has the seed's
notification path (model, post_save signal, Channels consumer over channels_redis).

Everything a benchmark run varies comes from the environment that bench/peers/run.sh sets:
the private PostgreSQL cluster and the private redis-server.  Defaults elsewhere are Django's
and channels_redis's own, because those are what a team running this stack actually has.
"""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False  # DEBUG=True keeps every query in memory: no production app runs like that
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "channels",
    "api",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PGPORT", "54391"),
        "NAME": os.environ.get("BENCH_PGDATABASE", "app"),
        "USER": os.environ.get("BENCH_PGUSER", "postgres"),
        # A web worker keeps its connection (CONN_MAX_AGE > 0 is the usual production setting);
        # 0 would reconnect per request and measure connection set-up instead.
        "CONN_MAX_AGE": 600,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

ROOT_URLCONF = "benchproj.urls"
ASGI_APPLICATION = "benchproj.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # capacity (100 per channel) and expiry (60 s) left at their defaults, as deployed.
        "CONFIG": {"hosts": [("127.0.0.1", int(os.environ.get("BENCH_REDIS_PORT", "56391")))]},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
