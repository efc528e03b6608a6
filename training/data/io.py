"""Image files: which files count as images, listing a folder, reading one as RGB uint8."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lowlight_rt.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_image", "natural_key"]


def natural_key(path: Path) -> tuple:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (numbers by value, text case-insensitively)."""
    import re

    parts = re.split(r"(\d+)", path.stem)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p) + (path.suffix.lower(),)


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive), naturally sorted; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder not found: {folder}")
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=natural_key)


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image as ``(H, W, 3) uint8 RGB`` (grey and alpha are converted; 16-bit scaled to 8)."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        try:  # formats this OpenCV build lacks (Pillow reads WebP, for one)
            from PIL import Image

            with Image.open(path) as im:
                return np.ascontiguousarray(np.asarray(im.convert("RGB")))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the same user error
            raise InputError(f"cannot read image {path}: {exc}") from None
    return np.ascontiguousarray(img[..., ::-1])
