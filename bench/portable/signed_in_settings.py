"""Settings of django-stomp-push for the benchmarks whose clients are signed in (connect_storm, push_sync).

A top-level module on purpose: the harness puts ``bench/portable/`` last on every server's PYTHONPATH, so a
``--baseline`` checkout, whose ``bench/`` may predate this file, runs under the very same settings.

The test project's settings, with:

- a valid session required (``ALLOW_ANONYMOUS`` off): a client whose session is not found is refused, so every
  subscribed client was checked; database sessions;
- the database from the environment: ``BENCH_PG_NAME`` set selects PostgreSQL (``BENCH_PG_HOST``,
  ``BENCH_PG_PORT``, ``BENCH_PG_USER``), otherwise SQLite at ``DJANGO_DB_PATH`` (as the test project reads it);
- channels-redis when ``REDIS_URL`` is set, the in-memory layer otherwise (as the test project does);
- 1 s heart-beats offered: a client asking for none gets none, the storm's sentinel asks for 1 s both ways.
"""

import os

from testproject.settings import *  # noqa: F403
from testproject.settings import STOMP_PUSH as PROJECT_STOMP_PUSH

DEBUG = False
ALLOWED_HOSTS = ["*"]
SESSION_ENGINE = "django.contrib.sessions.backends.db"
STOMP_PUSH = {**PROJECT_STOMP_PUSH, "ALLOW_ANONYMOUS": False, "HEARTBEAT": (1000, 1000)}

if os.environ.get("BENCH_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_PG_NAME"],
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
        }
    }
