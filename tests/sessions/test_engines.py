"""Each session engine on its own: it reads a session, extends it without ever resurrecting it, knows which
sessions were swept, and reads many sessions at once."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends import cache, cached_db, db, file, signed_cookies
from django.contrib.sessions.models import Session
from django.utils import timezone

from django_stomp_push.sessions import read_sessions, session_engine
from django_stomp_push.sessions.engines import (
    CachedDatabaseEngine,
    CacheEngine,
    DatabaseEngine,
    FileEngine,
    OtherEngine,
    SignedCookiesEngine,
    engine_for,
)
from tests.sessions import stores
from tests.sessions.conftest import sessions_on_postgresql

pytestmark = pytest.mark.django_db(databases="__all__")

ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "db-postgresql": "django.contrib.sessions.backends.db",
    "cached_db": "django.contrib.sessions.backends.cached_db",
    "cached_db-postgresql": "django.contrib.sessions.backends.cached_db",
    "file": "django.contrib.sessions.backends.file",
    "cache": "django.contrib.sessions.backends.cache",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
    "other": "tests.sessions.stores",
}
DATABASE = ("db", "db-postgresql", "cached_db", "cached_db-postgresql")
SERVER_SIDE = (*DATABASE, "file", "cache", "other")
EXTENDABLE = (*DATABASE, "file", "cache")
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture
def engine(request, settings, tmp_path):
    settings.SESSION_ENGINE = ENGINES[request.param]
    settings.SESSION_FILE_PATH = str(tmp_path)
    if request.param.endswith("-postgresql"):
        sessions_on_postgresql(settings)
    return session_engine()


def engines(*names: str):
    params = [pytest.param(name, marks=pytest.mark.postgres) if "postgres" in name else name for name in names]
    return pytest.mark.parametrize("engine", params, indirect=True)


def signed_in(user, backend: str = MODEL_BACKEND) -> dict[str, str]:
    return {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: user.get_session_auth_hash()}


def new_session(engine, data: dict) -> str:
    store = engine.store_class()
    store.update(data)
    store.save()
    return store.session_key


def close_to(when, expected) -> bool:
    return abs((when - expected).total_seconds()) < 5


# -- choosing an engine ------------------------------------------------------------------------------------------


def test_an_engine_is_chosen_by_the_django_store_it_derives_from():
    chosen = {
        store: type(engine_for(store))
        for store in (
            db.SessionStore,
            stores.AuditedDbStore,
            cached_db.SessionStore,
            file.SessionStore,
            cache.SessionStore,
            signed_cookies.SessionStore,
            stores.SessionStore,
        )
    }
    assert list(chosen.values()) == [
        DatabaseEngine,
        DatabaseEngine,
        CachedDatabaseEngine,
        FileEngine,
        CacheEngine,
        SignedCookiesEngine,
        OtherEngine,
    ]


def test_the_engine_is_chosen_once_per_value_of_the_setting(settings):
    assert session_engine() is session_engine()
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.file"
    assert type(session_engine()) is FileEngine


@engines(*ENGINES)
def test_only_the_db_engines_signal_deletes_and_only_signed_cookies_cannot_be_ended(engine, request):
    name = request.node.callspec.params["engine"]
    assert engine.signals_deletes is (name in DATABASE)
    assert engine.session_model is (Session if name in DATABASE else None)
    assert engine.ends_server_side is (name != "signed_cookies")
    assert engine.can_extend is (name in EXTENDABLE)


# -- read ----------------------------------------------------------------------------------------------------------


@engines(*ENGINES)
def test_a_live_session_reads_with_its_user_age_and_what_the_engine_knows_of_its_expiry(engine, request, alice):
    key = new_session(engine, signed_in(alice))
    state = engine.read(key)
    assert (state.key, state.user_id, state.max_age) == (key, str(alice.pk), 30 * 60)
    if request.node.callspec.params["engine"] in (*DATABASE, "file"):
        assert close_to(state.expires_at, timezone.now() + timedelta(minutes=30))
    else:
        assert state.expires_at is None


@engines(*ENGINES)
def test_an_unknown_key_reads_as_gone(engine):
    assert engine.read("nosuchsession" * 3) is None


@engines(*ENGINES)
def test_a_session_whose_user_changed_password_reads_as_gone(engine, alice):
    key = new_session(engine, signed_in(alice))
    alice.set_password("a-new-password")
    alice.save()
    assert engine.read(key) is None


@engines(*ENGINES)
def test_read_many_gives_each_key_what_read_gives(engine, alice, bob):
    anonymous = new_session(engine, {"k": "v"})
    alices = new_session(engine, signed_in(alice))
    bobs = new_session(engine, signed_in(bob))
    bob.set_password("a-new-password")
    bob.save()
    keys = [alices, "nosuchsession" * 3, anonymous, bobs]
    states = engine.read_many(keys)
    assert list(states) == keys
    assert states == {key: engine.read(key) for key in keys}
    assert [state and state.user_id for state in states.values()] == [str(alice.pk), None, None, None]
    assert states[anonymous] is not None


@engines("db")
def test_read_many_costs_one_query_for_the_rows_and_one_for_the_users(engine, make_user, django_assert_num_queries):
    keys = [new_session(engine, signed_in(make_user(f"user{i}"))) for i in range(5)]
    with django_assert_num_queries(2):
        states = engine.read_many(keys)
    assert all(states.values())


@engines("db")
def test_read_many_drops_a_user_the_backend_no_longer_lets_sign_in(engine, alice, bob):
    alices, bobs = new_session(engine, signed_in(alice)), new_session(engine, signed_in(bob))
    bob.is_active = False
    bob.save()
    assert [state is not None for state in engine.read_many([alices, bobs]).values()] == [True, False]


class CountingBackend(ModelBackend):
    """A backend with a get_user of its own: asked once per user."""

    asked: list = []

    def get_user(self, user_id):
        self.asked.append(user_id)
        return super().get_user(user_id)


@engines("db")
def test_a_backend_with_its_own_get_user_is_asked_for_each_user(engine, settings, alice, bob):
    backend = f"{__name__}.CountingBackend"
    settings.AUTHENTICATION_BACKENDS = [backend]
    CountingBackend.asked = []
    keys = [new_session(engine, signed_in(user, backend)) for user in (alice, bob)]
    assert all(engine.read_many(keys).values())
    assert sorted(CountingBackend.asked) == sorted([alice.pk, bob.pk])


def test_read_sessions_reads_an_empty_key_as_gone():
    assert read_sessions(["", "nosuchsession" * 3]) == {"": None, "nosuchsession" * 3: None}


# -- extend --------------------------------------------------------------------------------------------------------


@engines(*EXTENDABLE)
def test_extending_pushes_the_expiry_to_now_plus_the_age(engine, alice):
    key = new_session(engine, signed_in(alice))
    new_expiry = engine.extend(engine.read(key))
    assert close_to(new_expiry, timezone.now() + timedelta(minutes=30))
    if engine.session_model is not None:
        assert Session.objects.get(session_key=key).expire_date == new_expiry


@engines("signed_cookies", "other")
def test_an_engine_that_cannot_extend_extends_nothing(engine, alice):
    assert engine.extend(engine.read(new_session(engine, signed_in(alice)))) is None


@engines(*SERVER_SIDE)
def test_extending_a_deleted_session_never_resurrects_it(engine, alice):
    key = new_session(engine, signed_in(alice))
    state = engine.read(key)
    engine.store_class(key).delete(key)
    assert engine.extend(state) is None
    assert engine.read(key) is None
    assert not engine.store_class().exists(key)


@engines(*DATABASE, "file")
def test_extending_an_expired_session_never_revives_it(engine, settings, tmp_path, alice):
    key = new_session(engine, signed_in(alice))
    state = engine.read(key)
    if engine.session_model is not None:
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    else:
        os.utime(tmp_path / (settings.SESSION_COOKIE_NAME + key), (0, 0))  # last modified in 1970
    assert engine.read(key) is None
    assert engine.extend(state) is None
    if engine.session_model is not None:
        assert Session.objects.get(session_key=key).expire_date < timezone.now()
    else:
        assert not engine.store_class().exists(key)


@engines(*DATABASE)
def test_a_session_with_an_absolute_expiry_is_never_extended(engine):
    store = engine.store_class()
    store.set_expiry(timezone.now() + timedelta(minutes=5))
    store.save()
    state = engine.read(store.session_key)
    assert state.max_age is None
    assert engine.extend(state) is None


# -- swept keys ----------------------------------------------------------------------------------------------------


@engines(*DATABASE)
def test_swept_keys_are_those_deleted_or_expired(engine):
    live, deleted, expired = (new_session(engine, {"n": n}) for n in range(3))
    Session.objects.filter(session_key=deleted).delete()
    Session.objects.filter(session_key=expired).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert engine.swept_keys([live, deleted, expired]) == {deleted, expired}


@engines("file", "cache", "signed_cookies", "other")
def test_an_engine_without_rows_has_no_swept_keys(engine):
    assert engine.swept_keys(["nosuchsession" * 3]) == set()
