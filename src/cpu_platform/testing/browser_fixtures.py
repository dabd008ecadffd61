"""pytest plugin: a headless Debian Chromium driven by Playwright.

Playwright's sync API runs an event loop on the calling thread for as long as it is open, which
would break every asyncio test after it; so each test gets its own Playwright and browser
(about a second), closed at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cpu_platform.devstack.browser import LAUNCH_ARGS, ensure_browser_installed


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = ensure_browser_installed()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=list(LAUNCH_ARGS)
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page in its own context (no cookies shared between tests)."""
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    yield page
    context.close()
