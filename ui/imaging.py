"""numpy <-> QImage without copies, and aspect-ratio fitting."""

from __future__ import annotations

import numpy as np
from PyQt6 import sip
from PyQt6.QtCore import QRectF
from PyQt6.QtGui import QImage


def numpy_to_qimage(image: np.ndarray) -> QImage:
    """Wrap ``(H, W, 3)`` uint8 RGB in a QImage that SHARES the buffer (no copy).

    The QImage is built with an explicit ``bytesPerLine`` (the array's row stride), so padded or
    cropped rows are read correctly. The caller must keep ``image`` alive as long as the QImage is
    used (the viewer stores both together). Non-contiguous pixel layouts are copied once.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if image.strides[1] != 3 or image.strides[2] != 1:
        raise ValueError("pixels must be packed RGB (use np.ascontiguousarray first)")
    h, w = image.shape[:2]
    ptr = sip.voidptr(image.ctypes.data)  # first pixel of the view (works for row-padded views too)
    return QImage(ptr, w, h, image.strides[0], QImage.Format.Format_RGB888)


def qimage_to_numpy(image: QImage) -> np.ndarray:
    """Copy a QImage into ``(H, W, 3)`` uint8 RGB (tests, snapshots of the widget)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits().asstring(bpl * h), np.uint8).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def fit_rect(src_w: int, src_h: int, box: QRectF) -> QRectF:
    """The largest rectangle with aspect ``src_w:src_h`` centred inside ``box``."""
    if src_w <= 0 or src_h <= 0 or box.width() <= 0 or box.height() <= 0:
        return QRectF(box.topLeft(), box.topLeft())
    scale = min(box.width() / src_w, box.height() / src_h)
    w, h = src_w * scale, src_h * scale
    return QRectF(box.left() + (box.width() - w) / 2, box.top() + (box.height() - h) / 2, w, h)
