"""The demo page in real Chromium: pushes arrive, per-user notices stay per user, and a session's end is shown.

Each test starts its own daphne (``demo_server``), signs users in through the login form like a person would,
and saves a screenshot of the final state under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.demo_page import DemoPage, new_context

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The longest first reconnect wait of the page's backoff (demo.js: base 1 s, full jitter); waiting longer shows
#: none happened.
RECONNECT_DELAY = 1.0


def test_the_clock_pushed_by_the_server_ticks_on_the_page(browser, demo_server):
    server = demo_server()
    tab = DemoPage.sign_in(new_context(browser, server), "alice")
    assert tab.text("#user") == "alice"

    tab.wait_until("window.demo.clockCount >= 1", timeout=3)
    first = tab.text("#clock")
    tab.wait_until("window.demo.clockCount >= 3", timeout=4)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", tab.text("#clock"))
    assert tab.text("#clock") != first

    tab.screenshot("clock")
    assert tab.errors == []


def test_the_echo_reply_comes_back_to_the_sending_tab_only(browser, demo_server):
    server = demo_server()
    context = new_context(browser, server)
    sender = DemoPage.sign_in(context, "alice")
    other = DemoPage.open(context)
    placeholder = other.text("#echo-reply")

    sender.page.fill("#echo-text", "ping from tab 1")
    sender.page.click("#echo")
    sender.wait_until("window.demo.echoSentAt === null", timeout=3)
    assert re.fullmatch(r"“ping from tab 1” back for alice in \d+ ms", sender.text("#echo-reply"))

    time.sleep(0.3)
    assert other.text("#echo-reply") == placeholder
    sender.screenshot("echo")
    assert sender.errors == other.errors == []


def test_a_notification_reaches_every_tab_of_that_user_and_no_other_user(browser, demo_server):
    server = demo_server()
    alice = new_context(browser, server)
    alice_1 = DemoPage.sign_in(alice, "alice")
    alice_2 = DemoPage.open(alice)
    bob = DemoPage.sign_in(new_context(browser, server), "bob")

    alice_2.page.fill("#notify-text", "Build 42 is green")
    started = time.monotonic()
    alice_2.page.click("#notify")
    for tab in (alice_1, alice_2):
        tab.page.wait_for_selector("#notices li:has-text('Build 42 is green')", timeout=3000)
    latency = time.monotonic() - started
    print(f"\nnotify POST in alice's tab 2 -> shown in both of alice's tabs: {latency * 1000:.0f} ms")

    assert "from another tab" in alice_1.text("#notices li:first-child")
    assert "from this tab" in alice_2.text("#notices li:first-child")
    time.sleep(1.0)  # give a wrongly routed push ample time to reach bob
    assert bob.page.locator("#notices li:not(.empty)").count() == 0

    alice_1.screenshot("notice-alice-tab-1")
    bob.screenshot("notice-bob")
    assert alice_1.errors == alice_2.errors == bob.errors == []


def test_logging_out_in_one_tab_closes_the_other_with_1008_and_the_reason(browser, demo_server):
    server = demo_server()
    context = new_context(browser, server)
    tab_1 = DemoPage.sign_in(context, "alice")
    tab_2 = DemoPage.open(context)

    clicked_at = tab_2.now_ms()
    started = time.monotonic()
    tab_2.page.click("#logout")
    tab_1.wait_for_state("closed", timeout=3)
    seen_after = time.monotonic() - started
    shown_after = (tab_1.state["closedAt"] - clicked_at) / 1000
    print(
        f"\nlogout clicked in tab 2 -> close shown in tab 1: {shown_after * 1000:.0f} ms "
        f"(page clock), {seen_after * 1000:.0f} ms (test's clock)"
    )

    assert tab_1.text("#closed-text") == "Your session ended (1008): you logged out in another tab or window."
    assert tab_1.state["close"] == {"code": 1008, "message": "logged out"}
    assert tab_1.text("#status") == "signed out"
    assert tab_1.text(".who") == "No longer signed in as alice"
    assert tab_1.page.get_attribute("#closed-action", "href") == "/accounts/login/?next=/"
    assert shown_after < 1.0
    tab_2.page.wait_for_url("**/accounts/login/")
    tab_2.screenshot("signed-out-tab-2")

    time.sleep(RECONNECT_DELAY + 0.5)
    assert len(tab_1.websockets) == 1, "the page reconnected after 1008"
    assert tab_1.connection_state == "closed"
    tab_1.screenshot("logged-out-in-another-tab")
    assert tab_1.errors == []


def test_signing_in_as_someone_else_in_another_tab_ends_the_first_session_there(browser, demo_server):
    server = demo_server()
    context = new_context(browser, server)
    alice = DemoPage.sign_in(context, "alice")
    bob = DemoPage.sign_in(context, "bob")  # login() of another user flushes alice's session: its row is deleted

    alice.wait_for_state("closed", timeout=3)
    assert alice.text("#closed-text") == (
        "Your session ended (1008): it was ended on the server, or replaced by a new sign-in."
    )
    assert alice.state["close"] == {"code": 1008, "message": "session ended"}
    assert bob.connection_state == "connected"
    assert bob.text("#user") == "bob"
    alice.screenshot("session-replaced")
    assert alice.errors == bob.errors == []


def test_a_session_expires_with_no_request_and_the_page_says_so(browser, demo_server):
    server = demo_server(SESSION_COOKIE_AGE="6", STOMP_PUSH_ACTIVITY="none")
    tab = DemoPage.sign_in(new_context(browser, server), "alice")
    requests: list[str] = []
    tab.page.on("request", lambda request: requests.append(request.url))
    expires_at = tab.state["expiresAt"]
    assert 0 < expires_at - tab.now_ms() <= 6000

    assert tab.visible("#expiring")  # less than EXPIRY_NOTICE (60 s) is left from the start
    tab.wait_for_state("closed", timeout=10)
    late = (tab.state["closedAt"] - expires_at) / 1000
    print(f"\nsession expiry -> 'session expired' shown: {late * 1000:.0f} ms after the expiry date")

    assert tab.text("#closed-text") == "Your session expired (1008)."
    assert tab.state["close"] == {"code": 1008, "message": "session expired"}
    assert tab.text("#session-left") == "expired"
    assert not tab.visible("#expiring")
    assert 0 <= late < 1.5
    assert requests == [], "the expiry needed no HTTP request"
    tab.screenshot("session-expired")
    assert tab.errors == []


def test_stay_signed_in_extends_the_session_past_its_first_expiry(browser, demo_server):
    server = demo_server(SESSION_COOKIE_AGE="6", STOMP_PUSH_EXPIRY_NOTICE="4", STOMP_PUSH_ACTIVITY="none")
    tab = DemoPage.sign_in(new_context(browser, server), "alice")
    first_expiry = tab.state["expiresAt"]

    tab.page.wait_for_selector("#expiring", state="visible", timeout=6000)
    assert tab.state["sessionNotice"]["event"] == "expiring"  # the server's notice, EXPIRY_NOTICE s ahead
    tab.screenshot("session-expiring")
    tab.page.click("#stay")
    new_expiry = tab.wait_until(f"window.demo.expiresAt > {first_expiry} + 1000 && window.demo.expiresAt", 3)
    assert not tab.visible("#expiring")

    # Past the first expiry date the connection re-reads the session, finds the new date and says so.
    tab.wait_until(f"Date.now() > {first_expiry} + 300", timeout=6)
    notice = tab.wait_until(
        f"(n => n && Date.parse(n.expires_at) > {first_expiry} + 1000 && n)(window.demo.sessionNotice)", 2
    )
    assert tab.connection_state == "connected"
    assert abs(tab.page.evaluate(f"Date.parse({notice['expires_at']!r})") - new_expiry) < 1000
    tab.screenshot("session-extended")

    tab.wait_for_state("closed", timeout=8)
    assert tab.state["close"] == {"code": 1008, "message": "session expired"}
    assert tab.state["closedAt"] >= new_expiry
    assert tab.errors == []


def test_after_a_server_restart_the_page_reconnects_on_its_own(browser, demo_server):
    server = demo_server()
    tab = DemoPage.sign_in(new_context(browser, server), "alice")

    server.stop()
    tab.wait_for_state("reconnecting", timeout=5)
    assert tab.state["close"]["code"] != 1008
    assert re.search(r" Reconnecting( in \d+ s| now)?…$", tab.text("#closed-text"))
    assert not tab.visible("#closed-action")
    tab.screenshot("reconnecting")

    server.start()  # same port, same database: the session is still valid
    tab.wait_for_state("connected", timeout=15)
    assert not tab.visible("#closed")
    assert tab.state["connects"] == 2
    ticks = tab.state["clockCount"]
    tab.wait_until(f"window.demo.clockCount > {ticks}", timeout=3)
    tab.screenshot("reconnected-after-restart")
    assert tab.errors == []


def test_the_header_fits_a_phone_width_screen(browser, demo_server):
    server = demo_server()
    context = browser.new_context(base_url=server.http_url, viewport={"width": 360, "height": 740})
    tab = DemoPage.sign_in(context, "alice")
    page = tab.page
    # Nothing sticks out sideways: the bar wraps instead of widening the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    header = page.locator("header.bar")
    assert page.evaluate("(h) => h.scrollWidth <= h.clientWidth", header.element_handle())
    for selector in ("#status", "#user", "#logout"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, (selector, box)
    context.close()
