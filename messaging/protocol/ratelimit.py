"""Per-connection rate limits, pure: the caller passes the clock (`time.monotonic()`) in.

    TokenBucket  refuses a frame when the client goes faster than `rate_per_s` beyond `burst`;
                 the client gets an `error` with code `rate_limited` and stays connected.
    FloodGuard   counts those refusals; a client that keeps pushing after being refused is closed
                 with 4029.
    FrameLimiter both, with one verdict per frame.

The defaults never refuse a client that stays under 10 frames per second (PROTOCOL.md section 1):
in any interval of T seconds such a client sends at most 10*T + 10 frames, and the bucket holds
`burst` + `rate_per_s`*T = 40 + 20*T tokens, which is more for every T >= 0.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Final

DEFAULT_RATE_PER_S: Final = 20.0
DEFAULT_BURST: Final = 40.0
DEFAULT_MAX_REFUSALS: Final = 50
DEFAULT_REFUSAL_WINDOW_S: Final = 10.0


class TokenBucket:
    """`burst` tokens, refilled at `rate_per_s`; a frame costs `cost` tokens.

    Starts full. A clock that goes backwards refills nothing (it never raises).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate_per_s")

    def __init__(
        self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: float = DEFAULT_BURST
    ) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError("rate_per_s and burst must be positive")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._last: float | None = None

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens at time `now` (seconds) if the bucket holds them; else False.

        A refused frame spends nothing. A cost above `burst` is always refused.
        """
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def available(self, now: float) -> float:
        """Tokens the bucket would hold at `now` (nothing is spent)."""
        if self._last is None or now <= self._last:
            return self._tokens
        return min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)


class FloodGuard:
    """True once more than `max_refusals` refusals fall within `window_s` seconds: close 4029.

    Counting refusals in a window (rather than a streak) also catches a flood that the bucket's
    refill lets through one frame in twenty.
    """

    __slots__ = ("_times", "max_refusals", "window_s")

    def __init__(
        self,
        max_refusals: int = DEFAULT_MAX_REFUSALS,
        window_s: float = DEFAULT_REFUSAL_WINDOW_S,
    ) -> None:
        if max_refusals < 0 or window_s <= 0:
            raise ValueError("max_refusals must be >= 0 and window_s positive")
        self.max_refusals = max_refusals
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_refusals + 1)

    def refused(self, now: float) -> bool:
        """Record one refusal at `now`; True when the connection should be closed."""
        times = self._times
        times.append(now)
        horizon = now - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return len(times) > self.max_refusals


class Verdict(Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"  # reply `error` rate_limited, keep the connection
    CLOSE = "close"  # close with CloseCode.RATE_LIMITED (4029)


class FrameLimiter:
    """A connection's bucket and flood guard together."""

    __slots__ = ("bucket", "guard")

    def __init__(self, bucket: TokenBucket | None = None, guard: FloodGuard | None = None) -> None:
        self.bucket = bucket if bucket is not None else TokenBucket()
        # made at the first refusal: most connections never need one (memory per connection)
        self.guard = guard

    def admit(self, now: float, cost: float = 1.0) -> Verdict:
        """The verdict for one frame received at `now`."""
        if self.bucket.take(now, cost):
            return Verdict.ACCEPT
        if self.guard is None:
            self.guard = FloodGuard()
        return Verdict.CLOSE if self.guard.refused(now) else Verdict.REFUSE
