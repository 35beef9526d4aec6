from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class StompPushConfig(AppConfig):
    name = "django_stomp_push"
    verbose_name = "STOMP push"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete

        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import SettingsError, validate
        from .daphne import install
        from .sessions import session_engine
        from .signals import on_session_deleted, on_user_logged_out

        install()
        user_logged_out.connect(on_user_logged_out, dispatch_uid="django_stomp_push.logged_out")
        # Nothing here raises for a misconfiguration: the system checks report each with its id, and the ASGI
        # application refuses to start with them (routing.wrap).
        try:
            engine = session_engine()
            model = engine.session_model if engine.signals_deletes else None
        except Exception:  # reported by check stomp_push.E003 (the engine) or E006 (its model)
            model = None
        if model is not None:
            post_delete.connect(on_session_deleted, sender=model, dispatch_uid="django_stomp_push.session_deleted")
        values, _ = validate(getattr(settings, "STOMP_PUSH", None))  # invalid keys: check stomp_push.E001
        for module in values.get("handler_modules", ()):
            try:
                import_module(module)
            except ImportError:  # check stomp_push.E007 names the module and the error
                continue
            except SettingsError:  # @handler reads the settings: check stomp_push.E001 names what is wrong
                continue
