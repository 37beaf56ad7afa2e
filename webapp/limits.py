"""Requests per minute for each caller, so one script cannot starve the team.

A token bucket per caller (an API key, a signed-in user of the app, or a client address when
sign-in is off): it holds up to a minute's allowance, so a burst up to it passes, and refills
evenly. A caller past it is told how many seconds to wait (HTTP 429 with Retry-After).
"""

from __future__ import annotations

import math
import threading
import time

_FORGET_AFTER_SECONDS = 600.0  # an idle caller's bucket is full again by then: it is dropped


class RateLimiter:
    def __init__(self, per_minute: int):
        """per_minute: requests each caller may make a minute; 0 turns the limit off."""
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when counted)
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def wait_for(self, caller: str) -> int:
        """Takes one request from the caller's allowance: 0 when it may go on, else the whole
        seconds until it may."""
        if self.per_minute <= 0:
            return 0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                wait = 0
            else:
                self._buckets[caller] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate))
            if now - self._swept > _FORGET_AFTER_SECONDS:
                self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < _FORGET_AFTER_SECONDS}
        self._swept = now
