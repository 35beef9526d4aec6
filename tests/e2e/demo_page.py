"""The demo page as a test sees it: what a user reads on it, and what the page recorded in ``window.demo``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.servers import DEMO_PASSWORDS, REPO, DaphneServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ARTIFACTS = REPO / "test-artifacts" / "e2e"
VIEWPORT = {"width": 1100, "height": 760}


def new_context(browser: Browser, server: DaphneServer) -> BrowserContext:
    """A fresh browser profile (its own cookies) pointed at ``server``."""
    return browser.new_context(base_url=server.http_url, viewport=VIEWPORT)


class DemoPage:
    """One tab of the demo page."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.websockets: list[Any] = []
        self.errors: list[str] = []
        page.on("websocket", lambda websocket: self.websockets.append(websocket))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    def sign_in(cls, context: BrowserContext, username: str) -> DemoPage:
        """Open a tab, sign ``username`` in through the login form and wait for the STOMP connection."""
        tab = cls(context.new_page())
        tab.page.goto("/accounts/login/?next=/")
        tab.page.fill("#id_username", username)
        tab.page.fill("#id_password", DEMO_PASSWORDS[username])
        tab.page.click("#login")
        tab.wait_for_state("connected")
        return tab

    @classmethod
    def open(cls, context: BrowserContext) -> DemoPage:
        """Open another tab of an already signed-in context and wait for its STOMP connection."""
        tab = cls(context.new_page())
        tab.page.goto("/")
        tab.wait_for_state("connected")
        return tab

    # -- what the user sees ----------------------------------------------------------------------------------

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def visible(self, selector: str) -> bool:
        return self.page.locator(selector).is_visible()

    @property
    def connection_state(self) -> str:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed`` (the body's data-state)."""
        return self.page.locator("body").get_attribute("data-state") or ""

    def wait_for_state(self, state: str, timeout: float = 10.0) -> None:
        self.page.wait_for_selector(f"body[data-state={state}]", state="attached", timeout=timeout * 1000)

    def wait_until(self, expression: str, timeout: float = 10.0) -> Any:
        """Wait until the JavaScript ``expression`` is truthy in the page; returns its value."""
        return self.page.wait_for_function(expression, timeout=timeout * 1000, polling=50).json_value()

    # -- what the page recorded ------------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        return self.page.evaluate("window.demo")

    def now_ms(self) -> float:
        return self.page.evaluate("Date.now()")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
