"""Image source: one image file or a folder of images (sorted by name), decoded with OpenCV."""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np

from lowlight_rt.errors import InputError
from lowlight_rt.sources.base import Source, SourceInfo

__all__ = ["ImageSource", "IMAGE_EXTENSIONS", "ImageTooLargeError", "MAX_IMAGE_PIXELS", "is_image_path",
           "read_image"]

IMAGE_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
    ".pnm", ".pbm", ".jp2", ".exr", ".hdr", ".pic", ".sr", ".ras", ".avif",
})


def is_image_path(path: str | os.PathLike) -> bool:
    """True if the extension is one OpenCV can read as a still image."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _natural_key(name: str) -> list:
    """Sort key so that ``img2.png`` comes before ``img10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


MAX_IMAGE_PIXELS = 1 << 28
"""Largest image decoded (268 megapixels, e.g. 16384 x 16384; a 200 MP phone photo fits): larger
ones would need gigabytes at every stage. OpenCV itself refuses more than 2**30 pixels."""


class ImageTooLargeError(InputError):
    """The image's header claims more than :data:`MAX_IMAGE_PIXELS` pixels (exit 3)."""

    def __init__(self, path: str | os.PathLike, width: int | None, height: int | None) -> None:
        self.width, self.height = width, height
        limit = f"at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        if width is None or height is None:
            super().__init__(f"{path}: image too large to decode ({limit})")
        else:
            super().__init__(f"{path}: image too large: {width} x {height} "
                             f"({width * height / 1e6:.0f} megapixels, {limit})")


_PIL_LOCK = threading.Lock()


def image_header_size(data: np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` from an encoded image's header (no pixels decoded), ``None`` if unknown.

    Pillow reads only the header here; its decompression-bomb guard (which refuses to say the size)
    is lifted for that moment, as nothing is decoded.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(io.BytesIO(data.tobytes())) as im:
                return int(im.size[0]), int(im.size[1])
        except Exception:  # noqa: BLE001 - a format Pillow does not know, or a broken header
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """Decode an image to ``(H, W, 3)`` uint8 RGB, upright per EXIF, or ``None`` if unreadable.

    Uses ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII paths work on every OS.

    Raises:
        ImageTooLargeError: the header claims more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    size = image_header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(path, *size)
    # IMREAD_COLOR applies the EXIF orientation (phone photos come out upright) and drops alpha;
    # ANYDEPTH keeps 16-bit / float data so it can be scaled to 8 bits below
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # OpenCV's own size limit (formats Pillow cannot parse), or a bad file
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise ImageTooLargeError(path, *(size or (None, None))) from None
        return None
    if img is None or img.size == 0:
        return None
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        elif np.issubdtype(img.dtype, np.floating):
            img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            return None
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return None


class ImageSource(Source):
    """Reads one image or every image in a folder (not recursive), in natural name order.

    ``Frame.name`` is the file name (image sinks reuse it); ``Frame.extra["path"]`` the full path.
    Unreadable images are skipped and counted in ``stats.decode_errors``; ``InputError`` if none is
    readable. ``info`` describes the first readable image (later images may differ in size).
    """

    def __init__(self, path: str | os.PathLike, *, proc_size: int | None = None, size_multiple: int = 8,
                 queue_size: int = 4) -> None:
        super().__init__(proc_size=proc_size, size_multiple=size_multiple, live=False,
                         queue_size=queue_size)
        self.path = os.fspath(path)
        p = Path(self.path)
        if not p.exists():
            raise InputError(f"input not found: {self.path}")
        self._folder = p.is_dir()
        if self._folder:
            try:
                entries = [e for e in p.iterdir() if e.is_file() and is_image_path(e)]
            except OSError as exc:
                raise InputError(f"cannot list folder {self.path}: {exc.strerror}") from None
            if not entries:
                raise InputError(f"no images in folder {self.path} (png, jpg, tif, bmp, webp, ...)")
            self.files = sorted(entries, key=lambda e: _natural_key(e.name))
        else:
            self.files = [p]
        # find the first readable image now, so a folder of junk fails at open time
        first = None
        self._skipped_before = 0
        for f in self.files:
            first = self._read(f)
            if first is not None:
                break
            self._skipped_before += 1
        if first is None:
            what = "image" if len(self.files) == 1 else f"any of the {len(self.files)} images"
            raise InputError(f"cannot read {what} in {self.path}")
        self._first = first
        self.info = SourceInfo(width=first.shape[1], height=first.shape[0], fps=None, time_base=None,
                               is_live=False, frame_count=len(self.files), path=self.path,
                               kind="images")

    def _capture(self) -> None:
        if self._skipped_before:
            self.stats.add("decode_errors", self._skipped_before)
        for k, f in enumerate(self.files[self._skipped_before:]):
            if self.stopping:
                return
            img = self._first if k == 0 else self._read(f)
            if k == 0:
                self._first = None
            if img is None:
                self.stats.add("decode_errors")
                continue
            frame = self._frame_from_rgb(img, name=f.name, extra={"path": str(f)})
            if not self._emit(frame):
                return

    def _read(self, path: Path) -> np.ndarray | None:
        """:func:`read_image`; in a folder an image too large to decode is skipped like an unreadable one."""
        try:
            return read_image(path)
        except ImageTooLargeError:
            if not self._folder:
                raise
            return None

    def _close(self) -> None:
        self._first = None
