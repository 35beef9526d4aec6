"""Settings for the ``sweep`` benchmark, plugin installed: the test project as it is (daphne, django-stomp-push).

The database comes from the environment: ``BENCH_PG_NAME`` set selects PostgreSQL (``BENCH_PG_HOST``,
``BENCH_PG_PORT``, ``BENCH_PG_USER``, ``BENCH_PG_PASSWORD``; 127.0.0.1:5432 as postgres by default), otherwise
SQLite at ``DJANGO_DB_PATH``. ``REDIS_URL`` set: channels-redis through ``django_stomp_push.redis.layer_config``
(as the test project does). Sessions in the database (``SESSION_ENGINE`` db) either way.
:mod:`bench.settings_sweep_plain` is the same project without the plugin: the baseline.
"""

import os

from testproject.settings import *  # noqa: F403

DEBUG = False
SESSION_ENGINE = "django.contrib.sessions.backends.db"

if os.environ.get("BENCH_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_PG_NAME"],
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("BENCH_PG_PASSWORD", ""),
        }
    }
