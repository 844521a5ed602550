"""Rate limits: never refuse a client under 10 frames per second, close a flood with 4029."""

from __future__ import annotations

import random

import pytest

from messaging.protocol.ratelimit import FloodGuard, FrameLimiter, TokenBucket, Verdict


def test_steady_ten_per_second_is_never_refused() -> None:
    """Ten frames per second, evenly spaced, for ten minutes of simulated time are all accepted."""
    bucket = TokenBucket()
    assert all(bucket.take(i / 10) for i in range(10 * 600))


def test_ten_per_second_in_bursts_is_never_refused() -> None:
    """Ten frames at the same instant every second, for ten minutes, are all accepted."""
    bucket = TokenBucket()
    assert all(bucket.take(float(second)) for second in range(600) for _ in range(10))


def test_jittered_traffic_under_ten_per_second_is_never_refused() -> None:
    """Random traffic that never puts more than ten frames in any one-second window is accepted."""
    rng = random.Random(7)
    limiter = FrameLimiter()
    now, sent = 0.0, list[float]()
    while now < 300:
        now += rng.expovariate(12.0)
        if sum(1 for t in sent[-10:] if t > now - 1.0) < 10:
            sent.append(now)
            assert limiter.admit(now) is Verdict.ACCEPT
    assert len(sent) > 2000


def test_burst_is_served_then_refused() -> None:
    """A burst beyond the bucket's size is refused once the burst allowance is spent."""
    bucket = TokenBucket(rate_per_s=20, burst=40)
    results = [bucket.take(0.0) for _ in range(50)]
    assert results == [True] * 40 + [False] * 10


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    """Tokens come back at rate_per_s and never beyond burst."""
    bucket = TokenBucket(rate_per_s=20, burst=40)
    for _ in range(40):
        bucket.take(0.0)
    assert bucket.available(0.5) == pytest.approx(10)
    assert bucket.available(100.0) == 40


def test_refused_frame_costs_nothing() -> None:
    """A refusal does not spend tokens, so a client that slows down recovers at once."""
    bucket = TokenBucket(rate_per_s=1, burst=1)
    assert bucket.take(0.0)
    assert not bucket.take(0.5)
    assert bucket.take(1.0)


def test_cost_above_burst_is_always_refused() -> None:
    """A frame costing more than the burst can never pass."""
    bucket = TokenBucket(rate_per_s=10, burst=5)
    assert not bucket.take(1000.0, cost=6)
    assert bucket.take(1000.0, cost=5)


def test_clock_going_backwards_refills_nothing() -> None:
    """A clock that goes back neither raises nor mints tokens."""
    bucket = TokenBucket(rate_per_s=1, burst=2)
    assert bucket.take(10.0) and bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_invalid_parameters_are_refused() -> None:
    """A bucket or guard that could never work is a configuration error."""
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=0, burst=1)
    with pytest.raises(ValueError):
        FloodGuard(window_s=0)


def test_flood_is_closed_quickly() -> None:
    """A client sending 1000 frames per second is closed within a fraction of a second."""
    limiter = FrameLimiter()
    verdicts = [limiter.admit(i / 1000) for i in range(1000)]
    first_close = verdicts.index(Verdict.CLOSE)
    assert verdicts[:40] == [Verdict.ACCEPT] * 40
    assert Verdict.REFUSE in verdicts[:first_close]
    assert first_close < 200


def test_flood_guard_trips_past_the_threshold_within_the_window() -> None:
    """The guard closes on the refusal past max_refusals within window_s, not before."""
    guard = FloodGuard(max_refusals=3, window_s=10.0)
    assert [guard.refused(t) for t in (0.0, 1.0, 2.0, 3.0)] == [False, False, False, True]


def test_flood_guard_forgets_old_refusals() -> None:
    """Refusals older than the window no longer count."""
    guard = FloodGuard(max_refusals=3, window_s=10.0)
    assert not any(guard.refused(t) for t in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0))


def test_slightly_too_fast_client_is_refused_but_not_closed() -> None:
    """A client a little over the rate gets refusals but keeps its connection."""
    limiter = FrameLimiter()
    verdicts = [limiter.admit(i / 24) for i in range(24 * 120)]
    assert Verdict.REFUSE in verdicts
    assert Verdict.CLOSE not in verdicts
