"""Settings for the ``sweep`` benchmark's baseline: the same project without django-stomp-push (Django alone).

:mod:`bench.settings_sweep` minus what the plugin brings: the ``daphne`` and ``django_stomp_push`` apps, the demo
app built on them (and its URLs), the channel layer and the ASGI application. Same database, same session engine.
"""

from bench.settings_sweep import *  # noqa: F403

_PLUGIN_APPS = {"daphne", "django_stomp_push", "demo"}
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in _PLUGIN_APPS]  # noqa: F405
ROOT_URLCONF = "bench.urls_sweep_plain"
del ASGI_APPLICATION, CHANNEL_LAYERS, STOMP_PUSH  # noqa: F821
LOGGING = {"version": 1, "disable_existing_loggers": False}
