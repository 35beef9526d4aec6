"""Debian's Chromium, driven by Playwright, against the testproject's demo page served by real daphne processes.

No browser is ever downloaded: the tests launch ``chromium`` from the PATH (scripts/system-deps.sh installs it) and
skip, saying so, when it is missing; with STOMP_PUSH_REQUIRE_ALL=1 (CI) that skip is a failure.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers import DaphneServer, Project, migrated_project

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (each test opens its own contexts, i.e. its own cookie jars).

    Module scope, not session: while Playwright's sync API is running it marks its event loop as the thread's
    running loop, which the asyncio tests of other modules must not see.
    """
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed: run scripts/system-deps.sh (Debian's chromium; no browser download)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory) -> Project:
    """One migrated testproject database with the demo users for the module (migrating and hashing the demo
    passwords take seconds); every test signs in afresh, so sessions left by earlier tests do not matter."""
    return migrated_project(tmp_path_factory)


@pytest.fixture
def demo_server(demo_project, daphne_factory) -> Callable[..., DaphneServer]:
    """Start the testproject on one daphne (stopped after the test); keyword arguments are environment
    overrides such as ``SESSION_COOKIE_AGE="6"``. The in-memory channel layer is enough for one server."""

    def start(**env: str) -> DaphneServer:
        return daphne_factory(demo_project, **env)

    return start
