from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig


class StompPushConfig(AppConfig):
    name = "django_stomp_push"
    verbose_name = "STOMP push"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete

        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import get_config
        from .daphne import install
        from .sessions import session_engine
        from .signals import on_session_deleted, on_user_logged_out

        install()
        user_logged_out.connect(on_user_logged_out, dispatch_uid="django_stomp_push.logged_out")
        try:
            engine = session_engine()
        except Exception:  # reported by check stomp_push.E003
            engine = None
        if engine is not None and engine.signals_deletes:
            post_delete.connect(
                on_session_deleted, sender=engine.session_model, dispatch_uid="django_stomp_push.session_deleted"
            )
        try:
            modules = get_config().handler_modules
        except Exception:  # reported by check stomp_push.E001
            modules = ()
        for module in modules:
            import_module(module)
