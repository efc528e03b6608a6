"""Sliding-window rate and latency meters for the viewer's overlay (pure Python, thread-agnostic)."""

from __future__ import annotations

import statistics
import time
from collections import deque


class RateMeter:
    """Events per second over the last ``window`` seconds.

    Call :meth:`tick` once per event (a frame painted); :attr:`rate` is the count in the window
    divided by the span it covers.
    """

    def __init__(self, window: float = 1.0) -> None:
        self.window = float(window)
        self._times: deque[float] = deque()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        self.count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window; 0 with fewer than two events."""
        now = time.perf_counter() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        self._times.clear()
        self.count = 0


class LatencyMeter:
    """Recent latencies (seconds) with median / percentile over the last ``size`` samples."""

    def __init__(self, size: int = 120) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self.all: list[float] = []
        self.keep_all = False

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        if self.keep_all:
            self.all.append(seconds)

    @property
    def last(self) -> float | None:
        return self._samples[-1] if self._samples else None

    def median(self) -> float | None:
        return statistics.median(self._samples) if self._samples else None

    def reset(self) -> None:
        self._samples.clear()
        self.all.clear()
