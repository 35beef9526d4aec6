"""Settings: defaults, validation (each bad value raises ImproperlyConfigured naming its key), caching."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_stomp_push.conf import Config, SettingsError, build_config, get_config, validate
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
    ("BROKER_PREFIXES", "/topic/"),  # a string, not a list
    ("BROKER_PREFIXES", []),
    ("BROKER_PREFIXES", None),
    ("BROKER_PREFIXES", ["/queue"]),
    ("BROKER_PREFIXES", ["/"]),
    ("BROKER_PREFIXES", ["/topic/", 5]),
    ("BROKER_PREFIXES", ["/topic/", "/topic/"]),
    ("BROKER_PREFIXES", ["/topic/", "/topic/live/"]),
    ("BROKER_PREFIXES", ["/topic/", "/user/"]),
    ("BROKER_PREFIXES", ["/app/rpc/"]),
    ("USER_PREFIX", "/topic/"),  # overlaps the default broker prefix
    ("APP_PREFIX", "/user/"),
    ("APP_PREFIX", "/user/app/"),
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


# -- every error at once -------------------------------------------------------------------------------------


def test_every_bad_key_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        build_config({"HEARTBEAT": "fast", "MAX_FRAME_SIZE": 0, "NO_SUCH_SETTING": 1, "CONNECT_TIMEOUT": 5})
    assert isinstance(raised.value, ImproperlyConfigured)
    assert len(raised.value.errors) == 3
    for key in ("HEARTBEAT", "MAX_FRAME_SIZE", "NO_SUCH_SETTING"):
        assert f"STOMP_PUSH['{key}']" in str(raised.value)
    assert "CONNECT_TIMEOUT" not in str(raised.value)


def test_the_valid_keys_survive_the_invalid_ones():
    values, errors = validate({"HEARTBEAT": "fast", "CONNECT_TIMEOUT": 5, "BROKER_PREFIXES": ["/queue/"]})
    assert len(errors) == 1
    assert Config(**values) == Config(connect_timeout=5, broker_prefixes=("/queue/",), topic_prefix="/queue/")


@pytest.mark.parametrize(("raw", "kind"), [(["HEARTBEAT"], "list"), ("HEARTBEAT=1", "str"), (42, "int")])
def test_a_stomp_push_that_is_not_a_dict_is_named_by_its_type(raw, kind):
    with pytest.raises(ImproperlyConfigured, match=f"STOMP_PUSH must be a dict of settings, not {kind}"):
        build_config(raw)
    with override_settings(STOMP_PUSH=raw):
        with pytest.raises(ImproperlyConfigured, match=f"not {kind}"):
            get_config()


def test_a_key_that_is_not_a_string_is_an_error_not_a_traceback():
    with pytest.raises(ImproperlyConfigured, match="STOMP_PUSH\\[1\\] is not a setting"):
        build_config({1: 2})


# -- broker prefixes -----------------------------------------------------------------------------------------


def test_broker_prefixes_default_to_topic():
    assert Config().broker_prefixes == ("/topic/",)
    assert build_config({}).broker_prefixes == ("/topic/",)


def test_broker_prefixes_become_a_tuple_whose_first_entry_is_the_topic_prefix():
    config = build_config({"BROKER_PREFIXES": ["/topic/", "/queue/"]})
    assert config.broker_prefixes == ("/topic/", "/queue/")
    assert config.topic_prefix == "/topic/"


def test_the_deprecated_topic_prefix_is_a_one_prefix_broker_list():
    config = build_config({"TOPIC_PREFIX": "/exchange/"})
    assert config.broker_prefixes == ("/exchange/",)
    assert config.topic_prefix == "/exchange/"


def test_topic_prefix_and_broker_prefixes_cannot_both_be_set():
    with pytest.raises(ImproperlyConfigured, match=r"TOPIC_PREFIX.*set only BROKER_PREFIXES"):
        build_config({"TOPIC_PREFIX": "/topic/", "BROKER_PREFIXES": ["/topic/", "/queue/"]})


def test_an_overlap_names_both_prefixes_and_their_settings():
    with pytest.raises(ImproperlyConfigured) as raised:
        build_config({"BROKER_PREFIXES": ["/queue/", "/user/"]})
    assert "'/user/' (BROKER_PREFIXES) and '/user/' (USER_PREFIX)" in str(raised.value)


def test_a_broker_prefix_may_look_like_the_end_of_a_user_destination():
    # /user/queue/x starts with /user/, not /queue/: the two prefixes do not overlap.
    config = build_config({"BROKER_PREFIXES": ["/topic/", "/queue/"], "SESSION_DESTINATION": "/user/queue/s"})
    assert config.user_prefix == "/user/"


def test_other_prefixes_move_with_user_and_app_prefixes():
    config = build_config({"BROKER_PREFIXES": ["/user/"], "USER_PREFIX": "/me/", "SESSION_DESTINATION": "/me/s"})
    assert (config.broker_prefixes, config.user_prefix) == (("/user/",), "/me/")
