"""Viewer tests: pytest-qt on the offscreen platform, a generated clip and a fake live source."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QRectF, Qt
from PyQt6.QtWidgets import QApplication

from ui.imaging import fit_rect, numpy_to_qimage, qimage_to_numpy
from ui.meters import LatencyMeter, RateMeter
from ui.options import ViewerOptions
from ui.shortcuts import SHORTCUTS, shortcut_markdown
from ui.video_view import SIDE_BY_SIDE, SPLIT, VideoView


def _grab(widget) -> np.ndarray:
    """The widget as rendered, ``(H, W, 3)`` uint8 RGB."""
    return qimage_to_numpy(widget.grab().toImage())


def _region_mean(img: np.ndarray, rect: QRectF, inset: int = 4) -> float:
    x0, y0 = int(rect.left()) + inset, int(rect.top()) + inset
    x1, y1 = int(rect.right()) - inset, int(rect.bottom()) - inset
    return float(img[y0:y1, x0:x1].mean())


def _pair(h: int = 90, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    dark = np.full((h, w, 3), 20, np.uint8)
    bright = np.full((h, w, 3), 200, np.uint8)
    return dark, bright


# ---------------------------------------------------------------------------------- pure helpers
def test_qimage_shares_buffer_with_explicit_stride():
    base = np.zeros((10, 16, 3), np.uint8)
    base[..., 0] = np.arange(16, dtype=np.uint8)[None, :] * 10
    view = base[:, 2:14]                     # row stride 48 bytes, width 12: padded rows
    with pytest.raises(ValueError):
        numpy_to_qimage(view[:, ::2])       # not packed RGB
    img = numpy_to_qimage(view)
    assert img.bytesPerLine() == base.strides[0]
    assert img.pixelColor(0, 0).red() == 20 and img.pixelColor(11, 9).red() == 130
    base[0, 2, 0] = 77                       # no copy: the QImage sees the change
    assert img.pixelColor(0, 0).red() == 77
    back = qimage_to_numpy(img)
    assert back.shape == (10, 12, 3) and back[0, 0, 0] == 77


def test_fit_rect_keeps_aspect():
    r = fit_rect(1920, 1080, QRectF(0, 0, 400, 400))
    assert r.width() == pytest.approx(400) and r.height() == pytest.approx(225)
    assert r.top() == pytest.approx(87.5)


def test_meters():
    m = RateMeter(window=1.0)
    for i in range(31):
        m.tick(now=10.0 + i / 30)
    assert m.rate(now=11.0) == pytest.approx(30.0, rel=0.05)
    lat = LatencyMeter(5)
    for v in (0.01, 0.02, 0.03, 0.5, 0.04):
        lat.add(v)
    assert lat.median() == pytest.approx(0.03) and lat.last == 0.04


def test_options_from_namespace():
    import argparse

    ns = argparse.Namespace(input=None, camera="2", fp32=True, out="rec.mp4", strength=0.5,
                            quit_after=3, screenshot=None, something_else=1)
    o = ViewerOptions.from_any(ns)
    assert o.source_spec == 2 and o.fp16 is False and o.record == "rec.mp4" and o.quit_after == 3
    assert o.extra["something_else"] == 1


def test_viewer_doc_lists_every_shortcut():
    doc = Path(__file__).resolve().parents[1] / "docs" / "VIEWER.md"
    text = doc.read_text()
    assert shortcut_markdown() in text
    assert len({s.name for s in SHORTCUTS}) == len(SHORTCUTS)


# ---------------------------------------------------------------------------------- VideoView
def test_side_by_side_panes_show_input_and_enhanced(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(660, 240)
    view.show()
    dark, bright = _pair()
    latencies: list[float] = []
    view.frame_painted.connect(latencies.append)
    view.set_frame(dark, bright, capture_time=time.perf_counter())
    qtbot.waitUntil(lambda: len(latencies) == 1)
    assert 0 <= latencies[0] < 5
    img = _grab(view)
    rects = view.pane_rects()
    assert rects["input"].right() < rects["enhanced"].left()
    # aspect ratio kept: 16:9 in a 328x240 half -> 328 x 184.5
    assert rects["input"].width() / rects["input"].height() == pytest.approx(16 / 9, rel=0.01)
    assert _region_mean(img, rects["input"]) == pytest.approx(20, abs=3)
    assert _region_mean(img, rects["enhanced"]) == pytest.approx(200, abs=3)


def test_split_divider_follows_mouse_drag(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(400, 225)
    view.show()
    dark, bright = _pair()
    view.set_frame(dark, bright)
    view.set_mode(SPLIT)
    qtbot.waitExposed(view)
    r = view.pane_rects()["picture"]
    start = QPoint(int(view.divider_x()), int(r.center().y()))
    target_x = int(r.left() + 0.25 * r.width())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for x in range(start.x(), target_x - 1, -20):   # drag in steps, like a hand would
        qtbot.mouseMove(view, QPoint(x, start.y()))
    qtbot.mouseMove(view, QPoint(target_x, start.y()))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(target_x, start.y()))
    assert view.split == pytest.approx(0.25, abs=0.01)
    assert view.divider_x() == pytest.approx(target_x, abs=1.5)
    img = _grab(view)
    y = int(r.center().y()) + 30
    left = img[y, int(r.left()) + 3:target_x - 4].mean()
    right = img[y, target_x + 4:int(r.right()) - 3].mean()
    assert left == pytest.approx(20, abs=3)       # original left of the divider
    assert right == pytest.approx(200, abs=3)     # enhanced right of it
    view.toggle_mode()
    assert view.mode == SIDE_BY_SIDE
