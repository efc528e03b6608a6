"""The unit of data that flows source -> engine -> sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class Frame:
    """One video frame or image.

    Attributes:
        image: full-resolution picture, ``(H, W, 3)`` uint8 RGB, C-contiguous.
        index: 0-based position in the order the source produced it.
        pts: presentation timestamp in ``time_base`` units, or ``None`` (images, some live sources).
        time_base: unit of ``pts`` in seconds, or ``None``.
        capture_time: ``time.perf_counter()`` when the source produced the frame (for latency).
        proc: the picture downsampled for inference, ``(h, w, 3)`` uint8 RGB, or ``None`` when the
            processing size is not below the input's (then ``image`` is used as is).
        name: file name for image sources (image sinks reuse it), else ``None``.
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    capture_time: float = 0.0
    proc: np.ndarray | None = None
    name: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def inference_image(self) -> np.ndarray:
        """The picture the network should see: ``proc`` if set, else ``image``."""
        return self.image if self.proc is None else self.proc

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or ``None``."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


def processing_shape(width: int, height: int, proc_size: int | None, multiple: int = 8) -> tuple[int, int]:
    """Size ``(w, h)`` the network runs at for a ``width x height`` input.

    ``proc_size`` is the target length of the SHORT side in pixels. The aspect ratio is kept and both
    sides are rounded to a multiple of ``multiple``. Never upsamples: if ``proc_size`` is ``None`` or
    not below the input's short side, the input size itself is returned.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid frame size {width}x{height}")
    short = min(width, height)
    if proc_size is None or proc_size >= short:
        return width, height  # no downsampling: the network sees the frame itself (models pad internally)
    scale = proc_size / short
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h
