"""Fixtures for the deployment tests: the JWT secret of the session's gateways' environment.

Each test here starts its own gateways (and nginx, or a Redis Cluster), since it stops or
breaks them; Postgres is the session's.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def secret(service_env: dict[str, str]) -> str:
    return service_env["MESSAGING_JWT_SECRET"]
