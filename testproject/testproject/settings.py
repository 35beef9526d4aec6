"""Settings of the demo project. Environment variables: REDIS_URL (use channels-redis), DATABASE_URL-free:
DJANGO_DB_PATH (SQLite file), SESSION_COOKIE_AGE, DJANGO_DEBUG, DJANGO_SECRET_KEY, SESSION_ENGINE."""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-key-change-me-3f9a1c7e5b2d4068")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_stomp_push",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

if os.environ.get("REDIS_URL"):
    from django_stomp_push.redis import layer_config

    # REDIS_LAYER: "core" (channels-redis's RedisChannelLayer) or "pubsub" (its RedisPubSubChannelLayer).
    CHANNEL_LAYERS = {"default": layer_config(os.environ["REDIS_URL"], layer=os.environ.get("REDIS_LAYER", "pubsub"))}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

SESSION_ENGINE = os.environ.get("SESSION_ENGINE", "django.contrib.sessions.backends.db")
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(30 * 60)))

STOMP_PUSH = {
    "ACTIVITY": os.environ.get("STOMP_PUSH_ACTIVITY", "frames"),
    "EXPIRY_NOTICE": float(os.environ.get("STOMP_PUSH_EXPIRY_NOTICE", "60")),
    # "send,receive" in milliseconds; the interop tests offer short heart-beats to watch several periods pass.
    "HEARTBEAT": tuple(int(ms) for ms in os.environ.get("STOMP_PUSH_HEARTBEAT", "10000,10000").split(",")),
    "HANDLER_MODULES": ["demo.stomp"],
    # The unix socket of this machine's relay (manage.py stomp_push_relay), if the servers run behind one.
    "RELAY": os.environ.get("STOMP_PUSH_RELAY") or None,
    # Any other setting for a test or a benchmark run: STOMP_PUSH_JSON='{"CLIENT_SEND_TO_TOPICS": true}'.
    **json.loads(os.environ.get("STOMP_PUSH_JSON", "{}")),
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

STATIC_URL = "static/"
STATICFILES_DIRS = [("stompjs", str(REPO_DIR / "node_modules" / "@stomp" / "stompjs" / "bundles"))]

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_stomp_push": {
            "handlers": ["console"],
            "level": os.environ.get("STOMP_PUSH_LOG", "INFO"),
            "propagate": False,  # daphne also logs through the root logger: one line each, not two
        },
        "demo": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
