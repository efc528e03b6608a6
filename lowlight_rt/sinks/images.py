"""Image sinks: enhanced images written with the input's file names and formats (OpenCV)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from lowlight_rt.errors import OutputError
from lowlight_rt.frames import Frame
from lowlight_rt.sinks.base import same_path

__all__ = ["ImageFolderSink", "ImageFileSink", "write_image"]

_DEFAULT_EXT = ".png"


def _encode_params(ext: str) -> list[int]:
    ext = ext.lower()
    if ext in (".jpg", ".jpeg", ".jpe"):
        return [cv2.IMWRITE_JPEG_QUALITY, 95]
    if ext == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, 95]
    if ext == ".png":
        return [cv2.IMWRITE_PNG_COMPRESSION, 3]
    return []


# formats OpenCV writes with an alpha channel
_ALPHA_EXTENSIONS = frozenset({".png", ".webp", ".tif", ".tiff"})


def write_image(path: str | os.PathLike, rgb: np.ndarray, *, alpha: np.ndarray | None = None,
                grey: bool = False) -> None:
    """Write ``(H, W, 3)`` uint8 RGB to ``path`` in the format its extension names.

    ``grey``: written single-channel (the luma of ``rgb``), like the grey input it came from.
    ``alpha``: an ``(H, W)`` uint8 plane written as the alpha channel (RGBA; grey + alpha becomes
    RGBA with equal colour channels) where the format has one (PNG, WebP, TIFF); dropped otherwise.
    ``cv2.imencode`` + ``ndarray.tofile`` so non-ASCII paths work. Raises ``OutputError``.
    """
    path = Path(path)
    ext = path.suffix or _DEFAULT_EXT
    if alpha is not None and (ext.lower() not in _ALPHA_EXTENSIONS or alpha.shape != rgb.shape[:2]):
        alpha = None
    if grey:
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        picture = luma if alpha is None else cv2.merge([luma, luma, luma, alpha])
    else:
        picture = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if alpha is not None:
            picture = cv2.merge([*cv2.split(picture), alpha])
    try:
        ok, buf = cv2.imencode(ext, picture, _encode_params(ext))
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"cannot encode an image as {ext}: {path}")
    tmp = path.with_name(f".{path.name}.part")
    try:
        buf.tofile(str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_dir_writable(d: Path) -> None:
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {d}")


class ImageFolderSink:
    """Writes each enhanced image into ``out_dir`` under ``frame.name`` (same name, same format;
    grey stays grey and alpha is copied, see :func:`write_image`).

    Frames without a name (video frames) are written as ``000000.png``, ``000001.png``, ...
    The folder is created if missing (its parent must exist). Writing over an input image is
    refused: ``OutputError`` when ``out_dir`` is the input folder (``input_dir``) or a target
    file is the frame's source file (``frame.extra["path"]``).
    """

    def __init__(self, out_dir: str | os.PathLike, *, input_dir: str | os.PathLike | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.frames_written = 0
        self.closed = False
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputError(f"output path is a file, expected a folder: {self.out_dir}")
        if input_dir is not None and Path(input_dir).is_dir() and self.out_dir.exists() \
                and same_path(input_dir, self.out_dir):
            raise OutputError(f"output folder is the input folder: {self.out_dir}")
        parent = self.out_dir.parent
        if not self.out_dir.exists():
            if not parent.is_dir():
                raise OutputError(f"output folder's parent does not exist: {parent}")
            try:
                self.out_dir.mkdir()
            except OSError as exc:
                raise OutputError(f"cannot create output folder {self.out_dir}: "
                                  f"{exc.strerror or exc}") from None
        _check_dir_writable(self.out_dir)

    def target(self, frame: Frame) -> Path:
        """Where ``frame`` is written."""
        return self.out_dir / (frame.name or f"{frame.index:06d}{_DEFAULT_EXT}")

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Write ``enhanced`` ``(H, W, 3)`` uint8 RGB as ``out_dir / frame.name``."""
        if self.closed:
            raise OutputError(f"image sink {self.out_dir} is already closed")
        target = self.target(frame)
        src = frame.extra.get("path")
        if src is not None and target.exists() and same_path(src, target):
            raise OutputError(f"refusing to overwrite the input image: {target}")
        write_image(target, enhanced, alpha=frame.extra.get("alpha"), grey=bool(frame.extra.get("grey")))
        self.frames_written += 1

    def close(self, partial: bool = False) -> None:
        """Nothing buffered: every image is complete once ``write`` returns."""
        self.closed = True


class ImageFileSink:
    """Writes one enhanced image to ``path`` (format from its extension); for single-image inputs."""

    def __init__(self, path: str | os.PathLike, *, input_path: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.frames_written = 0
        self.closed = False
        if self.path.is_dir():
            raise OutputError(f"output path is a directory: {self.path}")
        if input_path is not None and self.path.exists() and same_path(input_path, self.path):
            raise OutputError(f"output path is the input file: {self.path}")
        if not self.path.parent.is_dir():
            raise OutputError(f"output folder does not exist: {self.path.parent}")
        _check_dir_writable(self.path.parent)

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Write ``enhanced`` ``(H, W, 3)`` uint8 RGB; a second image overwrites the first."""
        write_image(self.path, enhanced, alpha=frame.extra.get("alpha"), grey=bool(frame.extra.get("grey")))
        self.frames_written += 1

    def close(self, partial: bool = False) -> None:
        """Nothing buffered."""
        self.closed = True
