"""Thread-safe per-stage timing counters (inference ms per frame, FPS)."""

from __future__ import annotations

import threading
import time
from typing import Any


class StageTimer:
    """Accumulates the duration of one pipeline stage; safe to update and read from any thread.

    ``add(seconds, frames)`` records one call that handled ``frames`` frames. ``snapshot()`` gives
    ``frames``, ``calls``, ``total_s``, ``ms_per_frame`` (mean), ``last_ms`` (per frame, last call),
    ``min_ms``/``max_ms`` (per frame over calls) and ``fps`` (frames / wall time since the first call).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._frames = 0
            self._calls = 0
            self._total = 0.0
            self._last = 0.0
            self._min = float("inf")
            self._max = 0.0
            self._first_start: float | None = None
            self._last_end: float | None = None

    def add(self, seconds: float, frames: int = 1) -> None:
        """Record a call of ``seconds`` that processed ``frames`` frames (ending now)."""
        now = time.perf_counter()
        per_frame = seconds / max(frames, 1)
        with self._lock:
            self._frames += frames
            self._calls += 1
            self._total += seconds
            self._last = per_frame
            self._min = min(self._min, per_frame)
            self._max = max(self._max, per_frame)
            if self._first_start is None:
                self._first_start = now - seconds
            self._last_end = now

    def time(self, frames: int = 1) -> _TimerContext:
        """Context manager: ``with timer.time(n): ...`` records the block's duration for ``n`` frames."""
        return _TimerContext(self, frames)

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            wall = (self._last_end - self._first_start) if self._first_start is not None else 0.0
            return {
                "frames": self._frames,
                "calls": self._calls,
                "total_s": self._total,
                "ms_per_frame": 1e3 * self._total / self._frames if self._frames else 0.0,
                "last_ms": 1e3 * self._last,
                "min_ms": 1e3 * self._min if self._frames else 0.0,
                "max_ms": 1e3 * self._max,
                "fps": self._frames / wall if wall > 0 else 0.0,
            }


class _TimerContext:
    def __init__(self, timer: StageTimer, frames: int) -> None:
        self.timer, self.frames = timer, frames
        self.start = 0.0

    def __enter__(self) -> _TimerContext:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.timer.add(time.perf_counter() - self.start, self.frames)


class InferenceStats:
    """Stats of an :class:`~lowlight_rt.inference.worker.InferenceWorker`: stage timers + latency.

    Stages: ``wait`` (time blocked reading the source), ``infer`` (engine time per frame),
    ``output`` (time blocked handing results downstream). ``latency`` is capture -> enhanced.
    """

    STAGES = ("wait", "infer", "output", "latency")

    def __init__(self) -> None:
        self.stages = {name: StageTimer(name) for name in self.STAGES}
        self._lock = threading.Lock()
        self._batches = 0
        self._start: float | None = None
        self._end: float | None = None

    def __getitem__(self, name: str) -> StageTimer:
        return self.stages[name]

    def started(self) -> None:
        with self._lock:
            self._start = time.perf_counter()
            self._end = None

    def finished(self) -> None:
        with self._lock:
            self._end = time.perf_counter()

    def add_batch(self) -> None:
        with self._lock:
            self._batches += 1

    @property
    def frames(self) -> int:
        return self.stages["infer"].frames

    def fps(self) -> float:
        """Frames enhanced per second of wall time since the worker started."""
        with self._lock:
            start, end = self._start, self._end
        if start is None:
            return 0.0
        wall = (end if end is not None else time.perf_counter()) - start
        return self.frames / wall if wall > 0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            batches = self._batches
        out: dict[str, Any] = {name: t.snapshot() for name, t in self.stages.items()}
        out["frames"] = self.frames
        out["batches"] = batches
        out["fps"] = self.fps()
        out["infer_seconds"] = out["infer"]["total_s"]
        out["infer_ms_per_frame"] = out["infer"]["ms_per_frame"]
        out["dropped"] = 0  # the worker never drops; live drops are counted by the source
        return out
