"""The auth check Django makes on every HTTP request, for connections that make none, many sessions at a time.

A session's signed-in user must still exist, still be allowed to sign in, and still have the password the session
was signed in with (the session's auth hash): after a password change Django ends every other session of that user
at its next request, and a connection bound to one of them must close too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare

SignIn = tuple[str, Hashable]  # (backend path, user id)


def still_signed_in(sessions: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The keys of ``sessions`` (session key -> decoded data) whose signed-in user is still valid, each with that
    user (None for a session without a signed-in user).

    What ``django.contrib.auth.get_user`` checks: the user exists (per its backend) and the session's auth hash
    matches the user's (or one of its fallbacks). A session without a signed-in user is valid as far as auth is
    concerned. The users of ``ModelBackend`` (and of its subclasses that keep its ``get_user``) are fetched in one
    query; other backends' users one ``get_user`` call each.
    """
    valid: dict[str, Any] = {}
    sign_ins: dict[str, SignIn] = {}
    for key, data in sessions.items():
        if SESSION_KEY not in data:
            valid[key] = None
            continue
        sign_in = _sign_in(data)
        if sign_in is not None:
            sign_ins[key] = sign_in
    users = _users(set(sign_ins.values()))
    for key, sign_in in sign_ins.items():
        user = users.get(sign_in)
        if user is not None and _hash_matches(user, sessions[key].get(HASH_SESSION_KEY)):
            valid[key] = user
    return valid


def _sign_in(data: dict[str, Any]) -> SignIn | None:
    backend_path = data.get(BACKEND_SESSION_KEY)
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        return cast(SignIn, (backend_path, get_user_model()._meta.pk.to_python(data[SESSION_KEY])))
    except ValidationError:
        return None


def _users(sign_ins: set[SignIn]) -> dict[SignIn, Any]:
    """The user of each sign-in that its backend still accepts."""
    ids_of: dict[str, set[Hashable]] = {}
    for backend_path, user_id in sign_ins:
        ids_of.setdefault(backend_path, set()).add(user_id)
    users: dict[SignIn, Any] = {}
    for backend_path, ids in ids_of.items():
        backend: Any = load_backend(backend_path)
        if _fetches_by_pk(backend):
            manager = get_user_model()._default_manager
            for user in manager.filter(pk__in=ids):
                if backend.user_can_authenticate(user):
                    users[backend_path, user.pk] = user
        else:
            for user_id in ids:
                user = backend.get_user(user_id)
                if user is not None:
                    users[backend_path, user_id] = user
    return users


def _fetches_by_pk(backend: Any) -> bool:
    """Whether ``backend.get_user(id)`` is ModelBackend's: the user of that primary key, if it may sign in."""
    from django.contrib.auth.backends import ModelBackend

    return isinstance(backend, ModelBackend) and type(backend).get_user is ModelBackend.get_user


def _hash_matches(user: Any, session_hash: str | None) -> bool:
    if not hasattr(user, "get_session_auth_hash"):
        return True
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    fallbacks: Iterable[str] = getattr(user, "get_session_auth_fallback_hash", list)()
    return any(constant_time_compare(session_hash, fallback) for fallback in fallbacks)
