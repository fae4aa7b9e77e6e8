"""The test project's settings (test/django/run.sh): the database and the daemon's secret
come from the environment the suite sets."""
import os

env = os.environ.get

SECRET_KEY = "livenotify-django-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "livenotify_django",
    "api",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "project.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth"]},
}]
STATIC_URL = "/static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env("LN_DB_HOST", ""),
        "PORT": env("LN_DB_PORT", ""),
        "NAME": env("LN_DB_NAME", "livenotify_django"),
        "USER": env("LN_DB_USER", "app"),
    },
}

LIVENOTIFY = {
    "URL": env("LN_WS_URL", "/ws"),
    "JWT_ALGORITHM": "HS256",
    "JWT_KEY": env("LN_JWT_SECRET", ""),
    "AUDIENCE": "livenotify-django-test",
    "ISSUER": "livenotify-django-test-app",
    "TOKEN_LIFETIME": 120,
}
# LN_BREAK_SETTINGS=1: a project that forgot the key (the E001 check must say so).
if env("LN_BREAK_SETTINGS"):
    del LIVENOTIFY["JWT_KEY"]
