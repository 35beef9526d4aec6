"""Settings for the test suite: the demo project's, with fast password hashing and test handlers."""

from testproject.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# DRAIN_ON_SIGNALS off: a test run keeps its own Ctrl-C (the real servers the tests start keep the default)
STOMP_PUSH = {"HANDLER_MODULES": ["demo.stomp", "tests.handlers"], "DRAIN_ON_SIGNALS": False}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}


def _postgres() -> tuple[dict | None, str]:
    """A PostgreSQL database for the tests marked ``postgres`` (the sweep's SQL on both databases): its settings, or
    None and why not. STOMP_PUSH_TEST_PG_HOST / _PORT / _USER / _PASSWORD; 127.0.0.1:5432 as postgres by default.
    """
    import os

    options = {
        "HOST": os.environ.get("STOMP_PUSH_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("STOMP_PUSH_TEST_PG_PORT", "5432"),
        "USER": os.environ.get("STOMP_PUSH_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("STOMP_PUSH_TEST_PG_PASSWORD", ""),
    }
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed"
    try:
        with psycopg.connect(
            host=options["HOST"],
            port=options["PORT"],
            user=options["USER"],
            password=options["PASSWORD"],
            dbname="postgres",
            connect_timeout=3,
        ):
            pass
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"PostgreSQL at {options['HOST']}:{options['PORT']} is unreachable: {first}"
    # one database per test run: two runs at once on one server (a developer and CI) must not drop each other's
    name = f"stomp_push_tests_{os.getpid()}"
    return {"ENGINE": "django.db.backends.postgresql", "NAME": name, **options}, ""


POSTGRES, POSTGRES_MISSING = _postgres()
if POSTGRES:
    DATABASES = {**DATABASES, "postgres": POSTGRES}  # noqa: F405
