"""In-memory sinks: the newest enhanced pair for the viewer, and a sink that discards everything."""

from __future__ import annotations

import threading
import time

import numpy as np

from lowlight_rt.frames import Frame, YuvPlanes

__all__ = ["LatestFrameSink", "NullSink"]


class LatestFrameSink:
    """Keeps only the newest ``(frame, enhanced)`` pair (thread-safe) and counts writes.

    The viewer's GUI thread polls :meth:`latest` or blocks in :meth:`wait_newer`. It accepts
    :class:`YuvPlanes` (the pipeline's YUV path) and converts them to RGB only when read.
    """

    accepts_yuv = True

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pair: tuple[Frame, np.ndarray] | None = None
        self._count = 0
        self.closed = False

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Replace the stored pair."""
        with self._cond:
            self._pair = (frame, enhanced)
            self._count += 1
            self._cond.notify_all()

    def latest(self) -> tuple[Frame, np.ndarray] | None:
        """The newest pair, or ``None`` before the first write."""
        with self._cond:
            return self._rgb_pair()

    def _rgb_pair(self) -> tuple[Frame, np.ndarray] | None:
        if self._pair is not None and isinstance(self._pair[1], YuvPlanes):
            self._pair = (self._pair[0], self._pair[1].to_rgb())
        return self._pair

    @property
    def count(self) -> int:
        """How many pairs were written so far."""
        with self._cond:
            return self._count

    def wait_newer(self, count: int, timeout: float | None = None) -> tuple[int, tuple[Frame, np.ndarray] | None]:
        """Block until more than ``count`` pairs were written (or closed / timeout).

        Returns ``(current_count, newest_pair)``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._count <= count and not self.closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            return self._count, self._rgb_pair()

    def close(self, partial: bool = False) -> None:
        """Wake waiters; the last pair stays available."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class NullSink:
    """Discards frames but counts them (benchmarks, dry runs)."""

    accepts_yuv = True

    def __init__(self) -> None:
        self.frames_written = 0
        self.closed = False

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Count and drop."""
        self.frames_written += 1

    def close(self, partial: bool = False) -> None:
        """Nothing to finish."""
        self.closed = True
