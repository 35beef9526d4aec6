"""The demo page's connection, kept by the package's stomp-push helper, in real Chromium: a session end stops it for
good and the header says so; a close without a word is explained, waited out with a countdown, and recovered from;
the helper's ES module and plain script are the same API in the browser."""

from __future__ import annotations

import time

import pytest

from tests.e2e.demo_page import DemoPage, new_context

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Longer than the page's first reconnect windows (demo.js: base 1 s, doubling): a reconnect would have come.
QUIET_PERIOD = 4.0


def test_after_a_logout_in_another_tab_the_header_says_signed_out_and_the_page_never_reconnects(browser, demo_server):
    server = demo_server()
    context = new_context(browser, server)
    tab_1 = DemoPage.sign_in(context, "alice")
    tab_2 = DemoPage.open(context)
    assert tab_1.text(".who") == "Signed in as alice"
    assert tab_1.text("#status") == "connected"

    tab_2.page.click("#logout")
    tab_1.wait_for_state("closed", timeout=3)
    stopped = tab_1.state["connection"]
    assert (stopped["name"], stopped["kind"], stopped["reason"]) == ("stopped", "session-ended", "logged out")
    assert stopped["close"]["reconnect"] == "never"
    assert tab_1.text("#status") == "signed out"
    assert tab_1.text(".who") == "No longer signed in as alice"
    assert not tab_1.visible("#logout")
    assert tab_1.text("#closed-action") == "Sign in again"

    time.sleep(QUIET_PERIOD)
    assert len(tab_1.websockets) == 1, "the page reconnected after `reconnect: never`"
    assert tab_1.state["connection"] == stopped
    assert tab_1.text("#status") == "signed out"
    tab_1.screenshot("helper-signed-out")
    assert tab_1.errors == []


def test_a_close_without_an_error_frame_is_explained_counted_down_and_recovered_from(browser, demo_server):
    server = demo_server()
    tab = DemoPage.sign_in(new_context(browser, server), "alice")

    server.kill()  # SIGKILL: no ERROR frame, no close frame; the browser reports 1006
    tab.wait_for_state("reconnecting", timeout=5)
    assert tab.state["close"] == {"code": 1006, "message": ""}
    assert tab.text("#closed-text").startswith(
        "Lost the connection to the server (1006): it closed without a word, so the network failed or the server "
        "stopped abruptly. Reconnecting"
    )
    assert not tab.visible("#closed-action")
    tab.wait_until("/^reconnecting in \\d+ s$/.test(document.getElementById('status').textContent)", timeout=8)
    waiting = tab.state["connection"]
    assert waiting["close"]["reconnect"] == "now"  # a close without an ERROR frame means `now`
    assert 0 <= waiting["delay"] <= 15000  # the page's backoff cap
    tab.screenshot("helper-waiting-after-1006")

    server.start()  # same port, same database: the session is still valid
    tab.wait_for_state("connected", timeout=20)
    assert not tab.visible("#closed")
    assert tab.text("#status") == "connected"
    assert tab.state["connects"] == 2
    ticks = tab.state["clockCount"]
    tab.wait_until(f"window.demo.clockCount > {ticks}", timeout=3)  # subscribed again by the helper
    assert tab.errors == []


def test_the_es_module_and_the_plain_script_are_the_same_api_in_chromium(browser, demo_server):
    server = demo_server()
    tab = DemoPage.sign_in(new_context(browser, server), "alice")

    both = tab.page.evaluate(
        """async () => {
            const module = await import('/static/django_stomp_push/stomp-push.mjs');
            const describe = (api) => ({
                names: Object.keys(api).sort(),
                version: api.VERSION,
                sessionEnds: [...api.SESSION_END_MESSAGES],
            });
            return { module: describe(module), plain: describe(window.StompPush) };
        }"""
    )
    assert both["module"] == both["plain"]
    assert "Connection" in both["module"]["names"]
    assert both["module"]["sessionEnds"] == ["logged out", "session ended", "session expired", "no valid session"]
    assert tab.errors == []
