"""Browser tests: Debian's Chromium driven by Playwright against a real gateway (real Postgres
and Redis) with development sign-in on, and a fresh fictional school per test.

One browser process serves each test module; each person is a browser context of their own.
Pages get their token in the URL fragment, as a host application would hand it over
(docs/web-client.md); the fragment never reaches the server and the page erases it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Gateway, start_gateway

CHROMIUM = os.environ.get("MESSAGING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def web_gateway(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway with MESSAGING_DEV_LOGIN=1 (the page's sign-in and POST /api/dev/login)."""
    gw = start_gateway(service_env, tmp_path_factory.mktemp("web-gateway"), MESSAGING_DEV_LOGIN="1")
    try:
        yield gw
    finally:
        gw.terminate()


# Module scope, not session: Playwright's synchronous API keeps an event loop of its own in the
# main thread while it is open, which pytest-asyncio's session loop must not meet in the async
# tests that run after these.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's Chromium (Playwright's own browser download never runs), headless, one process
    per test module."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs the chromium package")
    launched = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="session")
def secret(service_env: dict[str, str]) -> str:
    return service_env["MESSAGING_JWT_SECRET"]


@pytest.fixture
def web_school(web_gateway: Gateway, secret: str) -> SchoolIds:
    """A fresh fictional school, imported through the admin API."""
    school = make_school()
    import_school(web_gateway, secret, school)
    return school


def dev_token(base: str, user: str) -> str:
    response = httpx.post(f"{base}/api/dev/login", json={"user": user}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@dataclass
class Person:
    """One signed-in person: a browser context and its page."""

    context: BrowserContext
    page: Page
    errors: list[str]

    def conversation(self, name: str) -> None:
        """Open the conversation whose list entry shows `name`."""
        self.page.locator(".conv-item", has_text=name).first.click()
        self.page.locator(".thread").wait_for()

    def write(self, text: str) -> None:
        box = self.page.locator(".composer textarea")
        box.fill(text)
        box.press("Enter")

    def messages(self) -> list[str]:
        return self.page.locator(".messages .msg:not(.pending) .body").all_inner_texts()


class People:
    """Opens signed-in pages; closes every context at the end of the test."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base
        self.contexts: list[BrowserContext] = []

    def sign_in(
        self,
        user: str,
        *,
        viewport: dict[str, int] = DESKTOP,
        base: str | None = None,
        lang: str | None = None,
        init_script: str | None = None,
    ) -> Person:
        origin = base or self.base
        context = self.browser.new_context(viewport=viewport, locale="fr-CA")
        context.set_default_timeout(TIMEOUT_MS)
        if init_script:
            context.add_init_script(script=init_script)
        if lang:
            context.add_init_script(script=f"localStorage.setItem('messaging.lang', '{lang}')")
        self.contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{origin}/#token={dev_token(self.base, user)}")
        page.locator(".topbar").wait_for()
        page.locator(".banner.hidden").wait_for(state="attached")
        return Person(context, page, errors)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def people(browser: Browser, web_gateway: Gateway) -> Iterator[People]:
    opened = People(browser, web_gateway.url)
    try:
        yield opened
    finally:
        opened.close()
