"""The unit of data that flows source -> engine -> sink."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import cv2
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


#: Luma weights ``(kr, kb)`` of the YUV matrices the YUV path handles (limited / "tv" range only).
YUV_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
# AVColorSpace values (libavutil/pixfmt.h) -> matrix. Unspecified (2) is what swscale converts as
# BT.601, so the RGB path and the YUV path agree on untagged files.
_AV_COLORSPACE = {1: "bt709", 2: "bt601", 5: "bt601", 6: "bt601"}
#: matrix -> the AVColorSpace a file written in it is tagged with (BT.709; SMPTE 170M for BT.601)
MATRIX_AV_COLORSPACE = {"bt709": 1, "bt601": 6}
#: the matrix a video is written in when its input has none the YUV path reads (cameras, full range, RGB)
FALLBACK_MATRIX = "bt709"
#: swscale's name of each matrix (``dst_colorspace`` of ``av.VideoFrame.reformat``)
SWS_MATRIX = {"bt709": "ITU709", "bt601": "ITU601"}


def yuv_path_matrix(vf) -> str | None:
    """The matrix (``"bt601"`` / ``"bt709"``) of a decoded ``av.VideoFrame`` as the YUV path reads it,
    or ``None`` when the YUV path cannot take the frame: not yuv420p, odd size, full range, or another
    matrix. Untagged frames are BT.601, as swscale converts them."""
    if vf.format.name != "yuv420p" or vf.width % 2 or vf.height % 2 or int(vf.color_range or 0) == 2:
        return None
    return _AV_COLORSPACE.get(int(vf.colorspace or 2))


def _is_neutral(chroma: np.ndarray) -> bool:
    """Whether a chroma plane is 128 everywhere (no colour at all)."""
    lo, hi, _, _ = cv2.minMaxLoc(chroma)
    return lo == hi == 128


@functools.lru_cache(maxsize=1)
def _luma_lut() -> np.ndarray:
    """Limited-range luma -> full-range grey (the conversion's common first column), rounded, uint8."""
    return np.clip(np.rint((np.arange(256) - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def yuv_to_rgb_matrix(matrix: str) -> np.ndarray:
    """``(3, 3)`` float64 ``A`` with ``RGB = A @ (Y - 16, U - 128, V - 128)``, RGB in 0..255 units
    (limited-range 8-bit YUV of ``matrix``, ``"bt601"`` or ``"bt709"``). Computed once per matrix
    (every frame asks for it): read-only."""
    kr, kb = YUV_MATRICES[matrix]
    kg = 1.0 - kr - kb
    sy, sc = 255.0 / 219.0, 255.0 / 224.0
    a = np.array([[sy, 0.0, sc * 2 * (1 - kr)],
                  [sy, -sc * 2 * kb * (1 - kb) / kg, -sc * 2 * kr * (1 - kr) / kg],
                  [sy, sc * 2 * (1 - kb), 0.0]])
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=None)
def rgb_to_yuv_matrix(matrix: str) -> np.ndarray:
    """Inverse of :func:`yuv_to_rgb_matrix`: ``(Y - 16, U - 128, V - 128) = B @ RGB`` (read-only)."""
    b = np.linalg.inv(yuv_to_rgb_matrix(matrix))
    b.setflags(write=False)
    return b


@dataclass
class YuvPlanes:
    """One 8-bit 4:2:0 picture, limited range, as the decoder gives it and the encoder takes it.

    Attributes:
        y: ``(H, W)`` uint8 luma, ``H`` and ``W`` even.
        u, v: ``(H/2, W/2)`` uint8 chroma (Cb, Cr).
        matrix: ``"bt601"`` or ``"bt709"``: the YUV <-> RGB matrix the planes are in.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: str = "bt709"
    #: the decoded ``av.VideoFrame`` the planes are views of (kept alive with them; converted by
    #: :meth:`to_rgb` exactly as the RGB path converts it), or ``None``
    av_frame: object = field(default=None, repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_av(cls, vf) -> YuvPlanes | None:
        """The planes of a decoded ``av.VideoFrame`` (views of its buffers, no copy; the frame is kept
        alive with them), or ``None`` when the YUV path cannot take it: not yuv420p, odd size, full
        range, or a matrix other than BT.601 / BT.709."""
        matrix = yuv_path_matrix(vf)
        if matrix is None:
            return None
        w, h = vf.width, vf.height
        planes = []
        for plane, (pw, ph) in zip(vf.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2))):
            buf = np.frombuffer(plane, np.uint8).reshape(ph, plane.line_size)
            planes.append(buf[:, :pw])
        return cls(planes[0], planes[1], planes[2], matrix, av_frame=vf)

    def to_av(self):
        """A new ``av.VideoFrame`` (yuv420p, tagged with the matrix and limited range) holding a copy."""
        import av

        vf = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, arr in zip(vf.planes, (self.y, self.u, self.v)):
            buf = np.frombuffer(plane, np.uint8).reshape(arr.shape[0], plane.line_size)
            buf[:, : arr.shape[1]] = arr
        vf.colorspace = MATRIX_AV_COLORSPACE[self.matrix]
        vf.color_range = 1
        return vf

    def to_rgb(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB with the same swscale conversion the decoder path uses (rounded,
        chroma interpolated)."""
        vf = self.av_frame if self.av_frame is not None else self.to_av()
        return vf.to_ndarray(format="rgb24", threads=1, interpolation=SWS_TO_RGB)

    def resized_rgb(self, width: int, height: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB, area-downsampled in YUV and converted at the small size.

        The conversion is linear, so averaging before converting equals converting before averaging
        (up to rounding and clipping); at the network's processing size this costs a fraction of a
        full-resolution conversion.
        """
        cw, ch = self.u.shape[1], self.u.shape[0]
        if width <= cw and height <= ch:   # luma 2x2-averaged first (exact, OpenCV's fast path)
            y = cv2.resize(self.y, (cw, ch), interpolation=cv2.INTER_AREA)
            small = cv2.resize(cv2.merge([y, self.u, self.v]), (width, height), interpolation=cv2.INTER_AREA)
        else:
            y = cv2.resize(self.y, (width, height), interpolation=cv2.INTER_AREA)
            u, v = (cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in (self.u, self.v))
            small = cv2.merge([y, u, v])
        if _is_neutral(self.u) and _is_neutral(self.v):
            # black and white (an infrared camera): R = G = B exactly. The general conversion rounds each
            # colour on its own and would give a grey picture one-code colour speckle
            grey = cv2.LUT(cv2.extractChannel(small, 0), _luma_lut())
            return cv2.merge([grey, grey, grey])
        a = yuv_to_rgb_matrix(self.matrix)
        affine = np.hstack([a, -(a @ np.array([16.0, 128.0, 128.0]))[:, None]])
        return cv2.transform(small, affine)   # rounded and saturated to uint8


@dataclass
class Frame:
    """One video frame or image.

    Attributes:
        image: full-resolution picture, ``(H, W, 3)`` uint8 RGB, C-contiguous. A source on the
            YUV path passes ``image=None`` with ``yuv`` set; ``image`` is then converted from
            ``yuv`` on first access (only consumers that need RGB pay for the conversion).
        index: 0-based position in the order the source produced it.
        pts: presentation timestamp in ``time_base`` units, or ``None`` (images, some live sources).
        time_base: unit of ``pts`` in seconds, or ``None``.
        capture_time: ``time.perf_counter()`` when the source produced the frame (for latency).
        proc: the picture downsampled for inference, ``(h, w, 3)`` uint8 RGB, or ``None`` when the
            processing size is not below the input's (then ``image`` is used as is).
        name: file name for image sources (image sinks reuse it), else ``None``.
        yuv: the decoded 4:2:0 planes, when the source kept them (:class:`YuvPlanes`), else ``None``.
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    capture_time: float = 0.0
    proc: np.ndarray | None = None
    name: str | None = None
    extra: dict = field(default_factory=dict)
    yuv: YuvPlanes | None = None

    def __post_init__(self) -> None:
        if self._image is None and self.yuv is None:
            raise ValueError("a Frame needs an image or yuv planes")

    @property
    def has_rgb(self) -> bool:
        """True when ``image`` is already RGB in memory (reading it costs no conversion)."""
        return self._image is not None

    @property
    def height(self) -> int:
        return int(self._image.shape[0]) if self._image is not None else self.yuv.height

    @property
    def width(self) -> int:
        return int(self._image.shape[1]) if self._image is not None else self.yuv.width

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or ``None``."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


def _get_image(self: Frame) -> np.ndarray:
    if self._image is None:  # converted once; two threads racing here compute the same array
        self._image = self.yuv.to_rgb()
    return self._image


def _set_image(self: Frame, value: np.ndarray | None) -> None:
    self._image = value


# ``image`` is a dataclass field (constructor argument, dataclasses.replace) backed by a lazy property.
Frame.image = property(_get_image, _set_image, doc=Frame.__doc__.split("Attributes:")[1].split("index:")[0].strip())


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
