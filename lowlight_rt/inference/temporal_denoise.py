"""Temporal denoising of the engine's output: a motion-adaptive recursive filter on uint8 pictures.

Brightening a dark frame multiplies its sensor noise: the enhanced video's sky and walls crawl with
grain that changes every frame, and x264 spends most of its bits and time on it. Where the picture
does not move, the filter averages it over frames (``out = a * x + (1 - a) * previous out``, ``a``
:data:`DENOISE_ALPHA`); where it moves it passes the new frame unchanged, so nothing trails behind
moving objects. It works on what the engine returns (4:2:0 :class:`~lowlight_rt.frames.YuvPlanes` or
``(H, W, 3)`` RGB), so every model and device gets it, on the CPU, after the network.

* **Motion** is decided at chroma resolution (half size): the luma area-averaged 2x2 (and the chroma
  planes as they are, or RGB area-averaged) minus the previous output's, in codes. A pixel is static
  when the 3x3 mean of that difference stays within ``T`` and the pixel's own within ``PIXEL_K * T``,
  in every plane, with ``T = max(MOTION_MIN, MOTION_K * sigma)``; the mask is used at full size for luma.
* **Noise** ``sigma`` (codes) is measured on the output's luma every :data:`NOISE_EVERY` frames:
  the median absolute response of Immerkaer's 3x3 noise kernel on every fourth row (robust to
  edges, unlike its mean). Clean or heavily compressed video measures well under a code (the real
  night clips here 0-0.25): below :data:`SIGMA_OFF` the filter is off (nothing to remove, no cost), and
  it comes in gradually up to full strength at :data:`SIGMA_FULL`.

Measured in docs/PERFORMANCE.md section 11 (picture and speed).
"""

from __future__ import annotations

import threading
from typing import Union

import cv2
import numpy as np

from ..frames import YuvPlanes

__all__ = ["TemporalDenoiser", "noise_sigma", "DENOISE_ALPHA", "SIGMA_OFF", "SIGMA_FULL", "MOTION_K", "MOTION_MIN",
           "PIXEL_K", "NOISE_EVERY"]

#: weight of the new frame where the picture is static and noisy (0.25: noise std x 0.38 once settled)
DENOISE_ALPHA = 0.25
#: measured noise (codes of output luma) below which the filter is off, and where it reaches full strength
SIGMA_OFF = 0.5
SIGMA_FULL = 1.5
#: motion threshold on the 3x3 mean of the half-size difference: ``max(MOTION_MIN, MOTION_K * sigma)`` codes
MOTION_K = 2.0
MOTION_MIN = 2.0
#: a single half-size pixel counts as moving beyond this many thresholds
PIXEL_K = 3.0
#: frames between two noise measurements
NOISE_EVERY = 4

_SECOND_DIFFERENCE = np.array([[1, -2, 1]], np.float32)
#: median of |N(0, 1) convolved with the kernel| (its norm is 6): 6 * 0.6745
_MEDIAN_TO_SIGMA = 1.0 / (6.0 * 0.6745)

Picture = Union[YuvPlanes, np.ndarray]


def noise_sigma(luma: np.ndarray) -> float:
    """Noise standard deviation of ``luma`` ``(H, W)`` uint8, in codes: the median absolute response of
    Immerkaer's 3x3 kernel (``[1, -2, 1]`` down and across) at full resolution, on every fourth row, over
    0.6745 x the kernel's norm (6). The median is robust to edges and texture, which a mean would count as noise."""
    if luma.ndim != 2 or luma.dtype != np.uint8:
        raise ValueError(f"expected (H, W) uint8 luma, got {luma.shape} {luma.dtype}")
    rows = (luma.shape[0] - 2) // 4 * 4
    if rows < 4 or luma.shape[1] < 3:
        return 0.0
    top, mid, low = (np.ascontiguousarray(luma[k:k + rows:4]) for k in range(3))
    down = cv2.add(cv2.addWeighted(top, 1.0, mid, -2.0, 0.0, dtype=cv2.CV_16S), low, dtype=cv2.CV_16S)
    response = cv2.convertScaleAbs(cv2.filter2D(down, -1, _SECOND_DIFFERENCE)[:, 1:-1])   # |.|, saturated at 255
    counts = np.cumsum(cv2.calcHist([response], [0], None, [256], [0, 256]).ravel())
    return float(np.searchsorted(counts, counts[-1] / 2.0)) * _MEDIAN_TO_SIGMA


class TemporalDenoiser:
    """The recursive filter; call it on each output picture of one stream, in order.

    Args:
        alpha: weight of the new frame in static areas at full strength, in (0, 1].

    Call with a :class:`YuvPlanes` (returns new planes in the same matrix) or an ``(H, W, 3)`` uint8 RGB
    array (returns a new array, or the picture itself while the filter is off); the input is never modified.
    :meth:`reset_state` forgets the past (the engine calls it before still images, on a model change, at strength 0
    and in ``Engine.reset_state``); a change of picture size or kind does too. Thread-safe (one lock).
    """

    def __init__(self, alpha: float = DENOISE_ALPHA) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self._lock = threading.Lock()
        #: pictures seen and pictures filtered since the denoiser was made (not cleared by :meth:`reset_state`)
        self.seen = 0
        self.filtered = 0
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the past (the name every holder of temporal state uses, so the engine resets it with
        the model's)."""
        with self._lock:
            self._previous: list[np.ndarray] | None = None    # last output, full-size planes (or the RGB array)
            self._previous_small: list[np.ndarray] | None = None   # its half-size motion planes
            self._frames = 0
            #: last measured noise of the output (codes of luma) and the weight of the new frame it gave
            self.sigma = 0.0
            self.weight = 1.0

    def __call__(self, picture: Picture) -> Picture:
        with self._lock:
            yuv = isinstance(picture, YuvPlanes)
            if not yuv and (picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8):
                raise ValueError(f"expected YuvPlanes or (H, W, 3) uint8 RGB, got {picture.shape} {picture.dtype}")
            planes = [picture.y, picture.u, picture.v] if yuv else [picture]
            if min(planes[0].shape[:2]) < 8:   # nothing to average a motion test over
                return picture
            self.seen += 1
            shapes = [p.shape for p in planes]
            if self._previous is None or [p.shape for p in self._previous] != shapes:
                self._previous, self._previous_small, self._frames = planes, None, 0
            if self._frames % NOISE_EVERY == 0:
                luma = picture.y if yuv else cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)
                self.sigma = noise_sigma(luma)
                self.weight = self._weight(self.sigma)
            first = self._frames == 0
            self._frames += 1
            if first or self.weight >= 1.0:
                self._previous, self._previous_small = planes, None
                return picture
            out = self._filter(planes, yuv)
            self.filtered += 1
            self._previous = out
            return YuvPlanes(out[0], out[1], out[2], picture.matrix) if yuv else out[0]

    @property
    def strength(self) -> float:
        """How strongly it filters now: 0 (off) to 1 (full strength, ``alpha``), from the last noise measured."""
        return 0.0 if self.alpha >= 1.0 else (1.0 - self.weight) / (1.0 - self.alpha)

    def summary(self) -> str:
        """One line for a run's summary: how many pictures were filtered, at what measured noise."""
        if not self.seen:
            return "no video frame seen"
        return (f"{self.filtered} of {self.seen} frames filtered; output noise {self.sigma:.1f} codes "
                f"(filtered from {SIGMA_OFF:g}, fully from {SIGMA_FULL:g})")

    def _weight(self, sigma: float) -> float:
        """Weight of the new frame for noise ``sigma``: 1 (off) up to :data:`SIGMA_OFF`, ``alpha`` from
        :data:`SIGMA_FULL`, linear between."""
        t = min(1.0, max(0.0, (sigma - SIGMA_OFF) / (SIGMA_FULL - SIGMA_OFF)))
        return 1.0 + t * (self.alpha - 1.0)

    @staticmethod
    def _small(planes: list[np.ndarray], yuv: bool) -> list[np.ndarray]:
        """Half-size planes motion is decided on: the luma area-averaged and the chroma planes as they are,
        or RGB area-averaged."""
        h, w = planes[0].shape[:2]
        return [cv2.resize(planes[0], (w // 2, h // 2), interpolation=cv2.INTER_AREA)] + (planes[1:] if yuv else [])

    def _filter(self, planes: list[np.ndarray], yuv: bool) -> list[np.ndarray]:
        """The motion mask at half size, then per plane the blend with the previous output where static and
        the new picture where moving; returns new planes (and keeps their half-size motion planes)."""
        small = self._small(planes, yuv)
        previous_small = self._previous_small or self._small(self._previous, yuv)
        threshold = max(MOTION_MIN, MOTION_K * self.sigma)
        t, tp = int(round(threshold)), int(round(PIXEL_K * threshold))
        static = None
        for cur, prev in zip(small, previous_small):
            diff = cv2.subtract(cur, prev, dtype=cv2.CV_16S)
            channels = diff.shape[2] if diff.ndim == 3 else 1
            mean = cv2.boxFilter(diff, -1, (3, 3))
            ok = cv2.bitwise_and(cv2.inRange(mean, (-t,) * channels, (t,) * channels),
                                 cv2.inRange(diff, (-tp,) * channels, (tp,) * channels))
            static = ok if static is None else cv2.bitwise_and(static, ok)
        moving = cv2.bitwise_not(static)
        full = planes[0].shape[1], planes[0].shape[0]
        moving_full = cv2.resize(moving, full, interpolation=cv2.INTER_NEAREST)
        out = []
        for cur, prev in zip(planes, self._previous):
            blend = cv2.addWeighted(cur, self.weight, prev, 1.0 - self.weight, 0.0)
            cv2.copyTo(cur, moving_full if cur.shape[:2] == planes[0].shape[:2] else moving, blend)
            out.append(blend)
        self._previous_small = self._small(out, yuv)
        return out
