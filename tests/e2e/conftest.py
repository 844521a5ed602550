"""End-to-end fixtures: two real `messaging serve` processes sharing Postgres and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from messaging.gateway.auth import mint_token
from tests.rosters import SchoolIds, make_school, roster_doc
from tests.servers import Gateway, start_gateway


@pytest.fixture(scope="session")
def gateways(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateway processes; tests that stop one use their own instead."""
    log_dir = tmp_path_factory.mktemp("gateway-logs")
    first = start_gateway(service_env, log_dir)
    try:
        second = start_gateway(service_env, log_dir)
        try:
            yield first, second
        finally:
            second.terminate()
    finally:
        first.terminate()


@pytest.fixture(scope="session")
def secret(service_env: dict[str, str]) -> str:
    return service_env["MESSAGING_JWT_SECRET"]


def import_school(gw: Gateway, secret: str, school: SchoolIds) -> dict[str, object]:
    response = httpx.post(
        f"{gw.url}/api/admin/roster",
        json=roster_doc(school),
        headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def school(gateways: tuple[Gateway, Gateway], secret: str) -> SchoolIds:
    """A fresh fictional school, imported through the admin API."""
    s = make_school()
    import_school(gateways[0], secret, s)
    return s
