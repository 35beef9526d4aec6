"""Settings: defaults, validation (each bad value raises ImproperlyConfigured naming its key), caching."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_stomp_push.conf import Config, build_config, get_config
from django_stomp_push.stomp import Limits


def test_no_settings_give_the_defaults():
    assert build_config(None) == Config()
    assert build_config({}) == Config()


def test_keys_are_case_insensitive():
    assert build_config({"heartbeat": (1, 2)}).heartbeat == build_config({"HEARTBEAT": (1, 2)}).heartbeat == (1, 2)


def test_a_heartbeat_list_becomes_a_tuple():
    assert build_config({"HEARTBEAT": [0, 500]}).heartbeat == (0, 500)


def test_handler_modules_become_a_tuple():
    assert build_config({"HANDLER_MODULES": ["a.b", "c"]}).handler_modules == ("a.b", "c")


def test_the_limits_are_passed_to_the_protocol():
    config = build_config({"MAX_FRAME_SIZE": 1000, "MAX_SUBSCRIPTIONS": 3, "MAX_PENDING_ACKS": 7})
    assert config.limits == Limits(max_frame_size=1000, max_subscriptions=3, max_pending_acks=7)


@pytest.mark.parametrize(
    "values",
    [
        {"HEARTBEAT": (0, 0)},
        {"EXPIRY_NOTICE": None},
        {"EXPIRY_NOTICE": 30},
        {"ACTIVITY": "frames+heartbeats"},
        {"CONNECT_TIMEOUT": 0.5},
        {"AUTHORIZE": "myapp.auth.authorize"},
        {"USER_PREFIX": "/me/", "SESSION_DESTINATION": "/me/session"},
        {"ALLOW_ANONYMOUS": True, "CSRF_CHECK": False, "CLIENT_SEND_TO_TOPICS": True},
    ],
)
def test_valid_values_are_accepted(values):
    build_config(values)


BAD_VALUES = [
    ("NO_SUCH_SETTING", 1),
    ("HEARTBEAT", 1000),
    ("HEARTBEAT", (1000,)),
    ("HEARTBEAT", (1000, -1)),
    ("HEARTBEAT", ("1000", "1000")),
    ("HEARTBEAT", (True, 1)),
    ("HEARTBEAT", "1000,1000"),
    *[
        (key, value)
        for key in (
            "MAX_FRAME_SIZE",
            "MAX_HEADER_COUNT",
            "MAX_HEADER_LENGTH",
            "MAX_SUBSCRIPTIONS",
            "MAX_TRANSACTIONS",
            "MAX_TRANSACTION_FRAMES",
            "MAX_PENDING_ACKS",
            "OUTBOUND_BUFFER_SIZE",
        )
        for value in (0, -1, 1.5, "10", True, None)
    ],
    *[
        (key, value)
        for key in (
            "HEARTBEAT_GRACE",
            "CONNECT_TIMEOUT",
            "SEND_TIMEOUT",
            "TOUCH_INTERVAL",
            "REVALIDATE_INTERVAL",
            "GROUP_REFRESH_INTERVAL",
        )
        for value in (0, -0.5, "10", True, None)
    ],
    ("EXPIRY_NOTICE", 0),
    ("EXPIRY_NOTICE", "60"),
    ("ACTIVITY", "always"),
    ("ACTIVITY", None),
    ("TOPIC_PREFIX", "topic/"),
    ("TOPIC_PREFIX", "/topic"),
    ("USER_PREFIX", 5),
    ("APP_PREFIX", "/app"),
    ("SESSION_DESTINATION", "/topic/session"),
    ("SESSION_DESTINATION", None),
    ("ALLOW_ANONYMOUS", "no"),
    ("CSRF_CHECK", 1),
    ("CLIENT_SEND_TO_TOPICS", "yes"),
    ("AUTHORIZE", 42),
    ("AUTHORIZE", ""),
    ("AUTHORIZE", print),
    ("CHANNEL_LAYER", ""),
    ("CHANNEL_LAYER", None),
    ("HANDLER_MODULES", "demo.stomp"),
    ("HANDLER_MODULES", [1]),
    ("HANDLER_MODULES", None),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_VALUES])
def test_a_bad_value_raises_improperly_configured_naming_its_key(key, value):
    with pytest.raises(ImproperlyConfigured, match=f"STOMP_PUSH\\['{key}'\\]"):
        build_config({key: value})


def test_a_session_destination_must_be_under_the_configured_user_prefix():
    with pytest.raises(ImproperlyConfigured, match="SESSION_DESTINATION"):
        build_config({"USER_PREFIX": "/me/"})  # the default /user/queue/session is not under /me/


def test_get_config_reads_settings_and_is_cached():
    assert get_config() is get_config()


def test_get_config_follows_override_settings():
    with override_settings(STOMP_PUSH={"CONNECT_TIMEOUT": 3}):
        assert get_config().connect_timeout == 3
    assert get_config().connect_timeout == Config.connect_timeout


def test_get_config_raises_for_bad_settings():
    with override_settings(STOMP_PUSH={"CONNECT_TIMEOUT": -3}):
        with pytest.raises(ImproperlyConfigured, match="CONNECT_TIMEOUT"):
            get_config()
