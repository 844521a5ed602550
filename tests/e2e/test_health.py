"""Health, readiness and Prometheus metrics of a running gateway."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.rosters import SchoolIds
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

REQUIRED = (
    "messaging_connections",
    "messaging_frames_in_total",
    "messaging_send_commit_seconds",
    "messaging_redis_reconnects_total",
)


async def _get(gw: Gateway, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{gw.url}{path}")


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text exposition by sample name (parsing checks the format)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


async def test_healthz_answers_200(gateways: tuple[Gateway, Gateway]) -> None:
    """GET /healthz answers 200 on every gateway."""
    for gw in gateways:
        response = await _get(gw, "/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_with_its_checks(gateways: tuple[Gateway, Gateway]) -> None:
    """GET /readyz answers 200 with Postgres and Redis reachable and the gateway not draining."""
    for gw in gateways:
        response = await _get(gw, "/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["checks"]["postgres"] is True
        assert body["checks"]["redis"] is True
        assert body["checks"].get("draining", False) is False


async def test_metrics_is_prometheus_text_with_the_service_metrics(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """GET /metrics is Prometheus text holding connections, frames in, send commit time and
    Redis reconnects, and the values follow what the gateway did."""
    gw = gateways[1]
    before = _samples((await _get(gw, "/metrics")).text)
    sends_before = sum(v for _, v in before.get("messaging_send_commit_seconds_count", []))
    async with connect(gw, secret, school.teacher) as teacher:
        conv = (
            await teacher.request(
                {"t": "open", "school": school.school, "members": [school.parent]}
            )
        )["conv"]
        for i in range(3):
            sent = await teacher.request({"t": "send", "conv": conv, "cid": str(i), "body": "m"})
            assert sent["t"] == "ok", sent
        response = await _get(gw, "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for name in REQUIRED:
            assert f"# TYPE {name} " in text or f"# TYPE {name.removesuffix('_total')} " in text
        samples = _samples(text)
        assert samples["messaging_connections"][0][1] >= 1
        frames_in = samples["messaging_frames_in_total"]
        assert sum(v for _, v in frames_in) >= 4
        assert all(set(labels) == {"type"} for labels, _ in frames_in)
        sends = sum(v for _, v in samples["messaging_send_commit_seconds_count"])
        assert sends >= sends_before + 3
        buckets = samples["messaging_send_commit_seconds_bucket"]
        assert any(labels.get("le") == "+Inf" for labels, _ in buckets)
        reconnects = samples["messaging_redis_reconnects_total"]
        assert len(reconnects) == 1 and reconnects[0][1] >= 0
