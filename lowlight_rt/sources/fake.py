"""A synthetic live source: frames from a generator function at a fixed rate (a stand-in camera)."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from lowlight_rt.frames import ShapeRule
from lowlight_rt.sources.base import Source, SourceInfo

__all__ = ["FakeLiveSource", "moving_pattern"]

_TIME_BASE = Fraction(1, 1_000_000)


def moving_pattern(width: int, height: int, seed: int = 0) -> Callable[[int], np.ndarray]:
    """A cheap generator of dark, noisy ``(height, width, 3)`` uint8 RGB frames with a moving bar."""
    rng = np.random.default_rng(seed)
    base = (np.linspace(4, 40, width, dtype=np.float32)[None, :, None]
            + np.linspace(0, 20, height, dtype=np.float32)[:, None, None])
    base = np.repeat(base, 3, axis=2)
    noise = [rng.integers(0, 12, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    bar = max(1, width // 16)

    def make(index: int) -> np.ndarray:
        img = base.astype(np.uint8)
        img += noise[index % len(noise)]
        x = (index * 8) % max(1, width - bar)
        img[:, x:x + bar] = 90
        return img

    return make


class FakeLiveSource(Source):
    """Produces ``generator(i)`` frames at ``fps`` in its own thread through a latest-frame buffer.

    Behaves like a camera: frames the consumer did not take in time are dropped and counted, pts
    are microseconds since start (``time_base`` 1/1e6). ``frames`` limits how many are produced
    (``None`` = until stopped).
    """

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0, *,
                 generator: Callable[[int], np.ndarray] | None = None, frames: int | None = None,
                 proc_shape: ShapeRule | None = None) -> None:
        super().__init__(proc_shape=proc_shape, live=True)
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.fps = float(fps)
        self.frames = frames
        self.generator = generator or moving_pattern(width, height)
        self.info = SourceInfo(width=width, height=height, fps=self.fps, time_base=_TIME_BASE,
                               is_live=True, frame_count=frames, kind="fake")

    def _capture(self) -> None:
        period = 1.0 / self.fps
        start = time.perf_counter()
        i = 0
        while not self.stopping and (self.frames is None or i < self.frames):
            due = start + i * period
            if not self._sleep(due - time.perf_counter()):
                return
            image = self.generator(i)
            if image.shape != (self.info.height, self.info.width, 3) or image.dtype != np.uint8:
                raise ValueError(f"generator returned {image.shape} {image.dtype}, expected "
                                 f"({self.info.height}, {self.info.width}, 3) uint8")
            pts = int(round((time.perf_counter() - start) * 1_000_000))
            if not self._emit(self._frame_from_rgb(image, pts=pts, time_base=_TIME_BASE)):
                return
            i += 1

    def _close(self) -> None:
        """Nothing to release."""
