"""The unit of data that flows source -> engine -> sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

# libswscale flags (swscale.h), passed to PyAV as ``interpolation=`` (a plain int works on PyAV 17 and 18).
_SWS_BILINEAR = 0x2
_SWS_FULL_CHR_H_INT = 0x2000
_SWS_ACCURATE_RND = 0x40000

SWS_TO_RGB = _SWS_BILINEAR | _SWS_FULL_CHR_H_INT | _SWS_ACCURATE_RND
"""swscale flags for decoded YUV -> RGB (``VideoFrame.to_ndarray(format="rgb24", interpolation=...)``).

swscale's default 4:2:0 / 4:2:2 -> RGB path is a table-driven one that truncates: measured on
H.264 clips, every decoded frame came out ~1.3 codes darker in luma (0.5 from the luma term, the rest
from the chroma terms), so ``--strength 0`` darkened a video by about one code per pass and the
enhancement multiplied the error. ``ACCURATE_RND | FULL_CHR_H_INT`` selects the exact path: rounded
to nearest, chroma interpolated (mean error < 0.01 code). It costs ~5 ms more CPU per 720p frame
(measured: +4 % CPU for a 720p file end to end); it also applies when downscaling for
``Frame.proc``, at no extra cost there.
"""

SWS_FROM_RGB = _SWS_BILINEAR | _SWS_ACCURATE_RND
"""swscale flags for RGB -> yuv420p in the video sink: rounded chroma (the default path biased R and
B by -0.2 code after a round trip; luma was already unbiased)."""


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


ShapeRule = Callable[[int, int], "tuple[int, int]"]
"""``(width, height) -> (w, h)`` the network runs at for a frame of that size.

The engine owns the processing size: a source is handed the engine's rule (``engine.proc_shape``)
and asks it for every frame, so the ``Frame.proc`` it downsamples is exactly what the engine runs
at, whatever model or processing size is chosen meanwhile. :class:`FixedShape` is a fixed rule for
sources used without an engine."""


@dataclass(frozen=True)
class FixedShape:
    """A fixed :data:`ShapeRule`: ``processing_shape(w, h, short_side, multiple)`` (sources without an engine)."""

    short_side: int
    multiple: int = 8

    def __call__(self, width: int, height: int) -> tuple[int, int]:
        return processing_shape(width, height, self.short_side, self.multiple)
