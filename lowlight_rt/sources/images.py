"""Image source: one image file or a folder of images (sorted by name), decoded with OpenCV."""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule
from lowlight_rt.sources.base import Source, SourceInfo

__all__ = ["ImageSource", "IMAGE_EXTENSIONS", "DecodedImage", "ImageHeader", "ImageTooLargeError",
           "MAX_IMAGE_PIXELS", "decode_image", "image_header", "is_image_path", "read_image"]

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

# Pillow modes: single-channel (grey) ones, and ones that carry alpha
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says (read by Pillow without decoding any pixels)."""

    width: int
    height: int
    grey: bool = False
    alpha: bool = False
    orientation: int = 1


def image_header(data: np.ndarray) -> ImageHeader | None:
    """The header of an encoded image (no pixels decoded), ``None`` for formats Pillow does not know.

    Pillow's decompression-bomb guard (which refuses to say the size) is lifted for that moment,
    as nothing is decoded.
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
                mode = im.mode
                alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info)
                try:
                    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
                except Exception:  # noqa: BLE001 - a broken EXIF block: keep the pixels as stored
                    orientation = 1
                return ImageHeader(int(im.size[0]), int(im.size[1]), grey=mode in _GREY_MODES,
                                   alpha=alpha, orientation=orientation)
        except Exception:  # noqa: BLE001 - a format Pillow does not know, or a broken header
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def image_header_size(data: np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` from an encoded image's header, ``None`` if unknown."""
    header = image_header(data)
    return None if header is None else (header.width, header.height)


@dataclass
class DecodedImage:
    """A decoded image: the RGB the engine enhances, and what the output must keep of the file.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB, upright per EXIF.
        alpha: ``(H, W)`` uint8 alpha plane (RGBA, grey + alpha, palette with transparency), else None.
        grey: the file is single-channel: the output is written as grey too.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False


def _to_uint8(img: np.ndarray) -> np.ndarray | None:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return None


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate / mirror ``img`` upright per its EXIF orientation (1..8), as ``IMREAD_COLOR`` does."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(img), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def decode_image(path: str | os.PathLike) -> DecodedImage | None:
    """Decode an image file (see :class:`DecodedImage`), or ``None`` if unreadable.

    Uses ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII paths work on every OS. 16-bit and float
    images are scaled to 8 bits.

    Raises:
        ImageTooLargeError: the header claims more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    header = image_header(data)
    if header is not None and header.width * header.height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(path, header.width, header.height)
    if header is not None and header.alpha:
        # IMREAD_UNCHANGED keeps alpha but not the EXIF orientation: applied below
        flags = cv2.IMREAD_UNCHANGED
    elif header is not None and header.grey:
        flags = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH
    else:
        # IMREAD_COLOR applies the EXIF orientation (phone photos come out upright);
        # ANYDEPTH keeps 16-bit / float data so it can be scaled to 8 bits
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as exc:  # OpenCV's own size limit (formats Pillow cannot parse), or a bad file
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise ImageTooLargeError(path, *((header.width, header.height) if header else (None, None))) from None
        return None
    if img is None or img.size == 0:
        return None
    img = _to_uint8(img)
    if img is None:
        return None
    if flags == cv2.IMREAD_UNCHANGED and header is not None:
        img = _apply_orientation(img, header.orientation)
    if img.ndim == 2:
        return DecodedImage(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB), grey=True)
    if img.shape[2] == 4:
        grey = bool(header is not None and header.grey)
        return DecodedImage(cv2.cvtColor(img, cv2.COLOR_BGRA2RGB), alpha=np.ascontiguousarray(img[..., 3]),
                            grey=grey)
    if img.shape[2] == 3:
        return DecodedImage(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if img.shape[2] == 2:  # grey + alpha
        return DecodedImage(cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2RGB),
                            alpha=np.ascontiguousarray(img[..., 1]), grey=True)
    return None


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """Decode an image to ``(H, W, 3)`` uint8 RGB, upright per EXIF, or ``None`` if unreadable.

    Raises:
        ImageTooLargeError: the header claims more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    decoded = decode_image(path)
    return None if decoded is None else decoded.rgb


#: how many skipped / ignored files the summary names before it only counts the rest
NAMES_SHOWN = 5
_UNREADABLE = "not a readable image"


def name_list(names: list[str], shown: int = NAMES_SHOWN) -> str:
    """``a, b, c`` for the first ``shown`` names, then ``and N more``."""
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


class ImageSource(Source):
    """Reads one image or every image in a folder, in natural name order. Subfolders are not entered.

    ``Frame.name`` is the file name (image sinks reuse it); ``Frame.extra["path"]`` the full path,
    ``Frame.extra["alpha"]`` the alpha plane of an image that has one and ``Frame.extra["grey"]``
    True for a single-channel image (the engine enhances RGB; image sinks write alpha and grey
    back). Unreadable images are skipped, counted in ``stats.decode_errors`` and listed in
    :attr:`skipped` with the reason; ``InputError`` if none is readable. ``info`` describes the
    first readable image (later images may differ in size).
    """

    def __init__(self, path: str | os.PathLike, *, proc_shape: ShapeRule | None = None,
                 queue_size: int = 4) -> None:
        super().__init__(proc_shape=proc_shape, live=False,
                         queue_size=queue_size)
        self.path = os.fspath(path)
        #: ``(file name, reason)`` of every image that could not be read, in order
        self.skipped: list[tuple[str, str]] = []
        #: subfolders (not entered) and files that are not images, by name
        self.ignored_folders: list[str] = []
        self.ignored_files: list[str] = []
        p = Path(self.path)
        if not p.exists():
            raise InputError(f"input not found: {self.path}")
        self._folder = p.is_dir()
        if self._folder:
            try:
                children = sorted(p.iterdir(), key=lambda e: _natural_key(e.name))
            except OSError as exc:
                raise InputError(f"cannot list folder {self.path}: {exc.strerror}") from None
            entries = []
            for e in children:
                if e.is_dir():
                    self.ignored_folders.append(e.name + "/")
                elif e.is_file() and is_image_path(e):
                    entries.append(e)
                else:
                    self.ignored_files.append(e.name)
            if not entries:
                sub = (f"; its {len(self.ignored_folders)} subfolder(s) are not entered"
                       if self.ignored_folders else "")
                raise InputError(f"no images in folder {self.path} (png, jpg, tif, bmp, webp, ...){sub}")
            self.files = entries
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
        self.info = SourceInfo(width=first.rgb.shape[1], height=first.rgb.shape[0], fps=None, time_base=None,
                               is_live=False, frame_count=len(self.files), path=self.path,
                               kind="images")

    def summary_notes(self) -> list[tuple[str, str]]:
        """Summary lines naming the images that were skipped and what the folder held besides images."""
        notes = []
        if self.skipped:
            names = [name if reason == _UNREADABLE else f"{name} ({reason})" for name, reason in self.skipped]
            what = "image" if len(names) == 1 else "images"
            notes.append(("skipped", f"{len(names)} unreadable {what}: {name_list(names)}"))
        ignored = []
        if self.ignored_folders:
            ignored.append(f"{len(self.ignored_folders)} subfolder(s), not entered: {name_list(self.ignored_folders)}")
        if self.ignored_files:
            ignored.append(f"{len(self.ignored_files)} non-image file(s): {name_list(self.ignored_files)}")
        if ignored:
            notes.append(("ignored", "; ".join(ignored)))
        return notes

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
            extra: dict = {"path": str(f)}
            if img.alpha is not None:
                extra["alpha"] = img.alpha
            if img.grey:
                extra["grey"] = True
            frame = self._frame_from_rgb(img.rgb, name=f.name, extra=extra)
            if not self._emit(frame):
                return

    def _read(self, path: Path) -> DecodedImage | None:
        """:func:`decode_image`; in a folder an image too large to decode is skipped like an unreadable
        one. Every skipped image is recorded in :attr:`skipped`."""
        try:
            decoded = decode_image(path)
        except ImageTooLargeError as exc:
            if not self._folder:
                raise
            self.skipped.append((path.name, f"image too large: {exc.width} x {exc.height}"
                                 if exc.width else "image too large"))
            return None
        if decoded is None:
            self.skipped.append((path.name, _UNREADABLE))
        return decoded

    def _close(self) -> None:
        self._first = None
