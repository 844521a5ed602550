"""Prometheus metrics of one gateway process, in a registry of its own (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "messaging_connections", "Open authenticated WebSocket connections", registry=r
        )
        self.frames_in = Counter(
            "messaging_frames_in_total", "Frames received from clients", ["type"], registry=r
        )
        self.frames_out = Counter(
            "messaging_frames_out_total", "Frames sent to clients", registry=r
        )
        self.errors = Counter(
            "messaging_errors_total", "Error replies sent, by code", ["code"], registry=r
        )
        self.closes = Counter(
            "messaging_closes_total",
            "Connections closed by the server, by code",
            ["code"],
            registry=r,
        )
        self.send_commit = Histogram(
            "messaging_send_commit_seconds",
            "From a send frame's arrival to its commit",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "messaging_append_batch_size",
            "Events appended per transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.redis_reconnects = Counter(
            "messaging_redis_reconnects_total",
            "Times the Redis subscriber reconnected",
            registry=r,
        )
        self.slow_consumers = Counter(
            "messaging_slow_consumers_total",
            "Connections closed for not keeping up",
            registry=r,
        )
