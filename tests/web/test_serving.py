"""How the gateway serves the web client: a strict Content-Security-Policy, assets cached by
version, and development sign-in that exists only when MESSAGING_DEV_LOGIN=1."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.rosters import SchoolIds
from tests.servers import Gateway, start_gateway
from tests.web.conftest import TIMEOUT_MS, People


@pytest.fixture(scope="module")
def plain_gateway(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway as in production: MESSAGING_DEV_LOGIN=0, one host origin allowed."""
    gw = start_gateway(
        service_env,
        tmp_path_factory.mktemp("plain-gateway"),
        MESSAGING_ALLOWED_ORIGINS="https://portail.example.org",
    )
    try:
        yield gw
    finally:
        gw.terminate()


def test_page_has_a_strict_policy_and_versioned_assets_cached_for_a_year(
    plain_gateway: Gateway,
) -> None:
    """The page allows no inline script, no other origin, only listed host origins as frame
    parents; its assets carry their content's version and are immutable, the page is not."""
    page = httpx.get(f"{plain_gateway.url}/", timeout=10)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'self' https://portail.example.org" in csp
    assert page.headers["cache-control"] == "no-cache"
    assert 'content="https://portail.example.org"' in page.text
    found = re.search(r'src="(/app/([0-9a-f]{16})/js/app\.js)"', page.text)
    assert found is not None
    asset = httpx.get(f"{plain_gateway.url}{found.group(1)}", timeout=10)
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = httpx.get(f"{plain_gateway.url}/app/0000000000000000/js/app.js", timeout=10)
    assert stale.headers["cache-control"] == "no-cache"
    missing = httpx.get(f"{plain_gateway.url}/app/{found.group(2)}/../../schema.sql", timeout=10)
    assert missing.status_code == 404


def test_dev_sign_in_does_not_exist_without_dev_login(plain_gateway: Gateway) -> None:
    """Without MESSAGING_DEV_LOGIN=1 both development routes answer 404 and mint nothing."""
    login = httpx.post(f"{plain_gateway.url}/api/dev/login", json={"user": "admin"}, timeout=10)
    users = httpx.get(f"{plain_gateway.url}/api/dev/users", timeout=10)
    assert (login.status_code, users.status_code) == (404, 404)
    assert "token" not in login.text


def test_dev_sign_in_page_lists_users_and_signs_in(
    people: People, web_gateway: Gateway, web_school: SchoolIds
) -> None:
    """Under dev login the page without a token lists roster users; choosing one signs in."""
    context = people.browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    people.contexts.append(context)
    page = context.new_page()
    page.goto(web_gateway.url)
    first = page.locator(".signin-user").first
    name = first.locator(".signin-name").inner_text()
    first.click()
    page.locator(".topbar .me").wait_for()
    assert page.locator(".topbar .me").inner_text() == name
    assert page.evaluate("location.hash") == ""
