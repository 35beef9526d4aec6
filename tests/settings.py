"""Settings for the test suite: the demo project's, with fast password hashing and test handlers."""

from testproject.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STOMP_PUSH = {"HANDLER_MODULES": ["demo.stomp", "tests.handlers"]}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
