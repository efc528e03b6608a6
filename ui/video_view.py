"""The picture: input and enhanced frames painted with QPainter, side by side or split."""

from __future__ import annotations

import time

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRect, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from .imaging import fit_rect, numpy_to_qimage

SIDE_BY_SIDE = "side"
SPLIT = "split"
MODES = (SIDE_BY_SIDE, SPLIT)

_GAP = 4          # pixels between the two panes
_GRAB = 10        # how close (pixels) a press must be to the divider to grab it


def _resize(src: np.ndarray, width: int, height: int, smooth: bool = True) -> np.ndarray:
    """Resize ``(H, W, 3)`` uint8 for display: integer-factor area averaging first when shrinking
    by 2x or more (no aliasing, fast path in OpenCV), then bilinear to the exact size."""
    h, w = src.shape[:2]
    k = min(w // max(1, width), h // max(1, height))
    if k >= 2:
        src = cv2.resize(src, (w // k, h // k), interpolation=cv2.INTER_AREA)
        if src.shape[1] == width and src.shape[0] == height:
            return src
    interp = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    return cv2.resize(src, (width, height), interpolation=interp)


def _pixel_rect(r: QRectF) -> QRect:
    """``r`` snapped to whole pixels (pictures are blitted 1:1)."""
    left, top = int(round(r.left())), int(round(r.top()))
    return QRect(left, top, max(1, int(round(r.right())) - left), max(1, int(round(r.bottom())) - top))


class VideoView(QWidget):
    """Paints the newest ``(input, enhanced)`` pair, fitted to the widget with its aspect ratio.

    Modes: ``"side"`` (input left, enhanced right) and ``"split"`` (one picture, input left of a
    draggable divider, enhanced right of it). Frames are numpy ``(H, W, 3)`` uint8 RGB arrays wrapped
    in QImages over the same memory (explicit bytesPerLine); the arrays are kept referenced for as
    long as their QImages may be painted. When the picture on screen is not 1:1, each frame is
    resized once with OpenCV (area averaging when shrinking; releases the GIL, so the runtime's
    threads keep running) and the resized array is blitted unscaled; repaints without a new frame
    (overlay updates, grabs) reuse it.

    Signals:
        frame_painted(float): emitted once per NEW frame after it was painted, with the end-to-end
            latency in seconds (painted time minus the frame's capture time; NaN when unknown).
        split_changed(float): the divider moved (fraction of the picture width in [0, 1]).
    """

    frame_painted = pyqtSignal(float)
    split_changed = pyqtSignal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setMouseTracking(True)
        self._mode = SIDE_BY_SIDE
        self._split = 0.5
        self._dragging = False
        self._input: np.ndarray | None = None
        self._enhanced: np.ndarray | None = None
        self._qin: QImage | None = None
        self._qout: QImage | None = None
        self._scaled: dict[str, tuple[tuple[int, int], np.ndarray, QImage]] = {}
        self._pending_capture: float | None = None
        self._new_frame = False
        self.overlay_lines: list[str] = []
        self.overlay_visible = True
        self.placeholder = "Drop a video file here, or press Ctrl+O (F1 for help)"
        self.smooth = True
        self.paint_seconds = 0.0   # GUI-thread time spent painting frames (benchmarks)
        self.paint_count = 0
        self._font = QFont(self.font())
        self._font.setStyleHint(QFont.StyleHint.Monospace)
        self._font.setFamily("monospace")

    # ------------------------------------------------------------------ state
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown view mode {mode!r}; expected one of {MODES}")
        self._mode = mode
        self.update()

    def toggle_mode(self) -> str:
        self.set_mode(SPLIT if self._mode == SIDE_BY_SIDE else SIDE_BY_SIDE)
        return self._mode

    @property
    def split(self) -> float:
        """Divider position as a fraction of the picture width, in [0, 1]."""
        return self._split

    def set_split(self, value: float) -> None:
        value = min(1.0, max(0.0, float(value)))
        if value != self._split:
            self._split = value
            self.split_changed.emit(value)
            self.update()

    def has_frame(self) -> bool:
        return self._input is not None

    def current_images(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``(input, enhanced)`` arrays on screen, or ``None``."""
        if self._input is None or self._enhanced is None:
            return None
        return self._input, self._enhanced

    def set_frame(self, image: np.ndarray, enhanced: np.ndarray, capture_time: float | None = None) -> None:
        """Show a new pair. ``image`` and ``enhanced``: ``(H, W, 3)`` uint8 RGB (same size)."""
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)
        if not enhanced.flags.c_contiguous:
            enhanced = np.ascontiguousarray(enhanced)
        # Keep the arrays alive together with the QImages that point into them.
        self._input, self._enhanced = image, enhanced
        self._qin, self._qout = numpy_to_qimage(image), numpy_to_qimage(enhanced)
        self._scaled.clear()
        self._pending_capture = capture_time
        self._new_frame = True
        self.update()

    def clear(self) -> None:
        self._input = self._enhanced = None
        self._qin = self._qout = None
        self._scaled.clear()
        self._new_frame = False
        self.update()

    # ------------------------------------------------------------------ geometry
    def pane_rects(self) -> dict[str, QRectF]:
        """Where the pictures are drawn (widget coordinates).

        Side by side: ``{"input": rect, "enhanced": rect}``. Split: ``{"picture": rect}``.
        Empty when no frame is shown.
        """
        if self._qin is None:
            return {}
        w, h = self._qin.width(), self._qin.height()
        full = QRectF(self.rect())
        if self._mode == SPLIT:
            return {"picture": fit_rect(w, h, full)}
        half = (full.width() - _GAP) / 2
        left = QRectF(full.left(), full.top(), half, full.height())
        right = QRectF(full.left() + half + _GAP, full.top(), half, full.height())
        return {"input": fit_rect(w, h, left), "enhanced": fit_rect(w, h, right)}

    def divider_x(self) -> float | None:
        """x of the split divider in widget coordinates (split mode with a frame), else ``None``."""
        rects = self.pane_rects()
        if "picture" not in rects:
            return None
        r = rects["picture"]
        return r.left() + self._split * r.width()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        t0 = time.perf_counter()
        p = QPainter(self)
        try:
            p.fillRect(self.rect(), QColor(16, 16, 16))
            if self._qin is None or self._qout is None:
                p.setPen(QColor(170, 170, 170))
                p.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, self.placeholder)
                return
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            rects = self.pane_rects()
            if self._mode == SPLIT:
                self._paint_split(p, rects["picture"])
            else:
                for key in ("input", "enhanced"):
                    target = _pixel_rect(rects[key])
                    p.drawImage(target, self._image_for(key, target.width(), target.height()))
                self._paint_labels(p, rects["input"], rects["enhanced"])
            if self.overlay_visible and self.overlay_lines:
                self._paint_overlay(p)
        finally:
            p.end()
        if self._new_frame:
            self._new_frame = False
            now = time.perf_counter()
            self.paint_seconds += now - t0
            self.paint_count += 1
            cap = self._pending_capture
            latency = now - cap if cap else float("nan")
            self.frame_painted.emit(latency)

    def _image_for(self, key: str, width: int, height: int) -> QImage:
        """``key``'s picture at ``width x height`` (the original QImage when it is 1:1)."""
        src = self._input if key == "input" else self._enhanced
        qsrc = self._qin if key == "input" else self._qout
        assert src is not None and qsrc is not None
        if (width, height) == (src.shape[1], src.shape[0]) or width < 1 or height < 1:
            return qsrc
        cached = self._scaled.get(key)
        if cached is not None and cached[0] == (width, height):
            return cached[2]
        arr = _resize(src, width, height, self.smooth)
        qimg = numpy_to_qimage(arr)
        self._scaled[key] = ((width, height), arr, qimg)   # keeps ``arr`` alive with its QImage
        return qimg

    def _paint_split(self, p: QPainter, r: QRectF) -> None:
        target = _pixel_rect(r)
        w, h = target.width(), target.height()
        qin, qout = self._image_for("input", w, h), self._image_for("enhanced", w, h)
        cut = int(round(self._split * w))
        if cut > 0:
            p.drawImage(QRect(target.left(), target.top(), cut, h), qin, QRect(0, 0, cut, h))
        if cut < w:
            p.drawImage(QRect(target.left() + cut, target.top(), w - cut, h), qout, QRect(cut, 0, w - cut, h))
        x = r.left() + r.width() * self._split
        p.setPen(QPen(QColor(255, 255, 255, 220), 2))
        p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
        p.setBrush(QColor(255, 255, 255, 220))
        p.drawEllipse(QPointF(x, r.center().y()), 7, 7)
        self._paint_labels(p, QRectF(r.left(), r.top(), r.width() * self._split, r.height()),
                           QRectF(x, r.top(), r.right() - x, r.height()))

    def _paint_labels(self, p: QPainter, left: QRectF, right: QRectF) -> None:
        p.setPen(QColor(230, 230, 230))
        margin = 6
        if left.width() > 60:
            p.drawText(left.adjusted(margin, 0, 0, -margin),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, "input")
        if right.width() > 80:
            p.drawText(right.adjusted(0, 0, -margin, -margin),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom, "enhanced")

    def _paint_overlay(self, p: QPainter) -> None:
        p.setFont(self._font)
        fm = p.fontMetrics()
        lh = fm.height()
        width = max(fm.horizontalAdvance(line) for line in self.overlay_lines) + 16
        box = QRectF(8, 8, width, lh * len(self.overlay_lines) + 10)
        p.fillRect(box, QColor(0, 0, 0, 150))
        p.setPen(QColor(120, 255, 140))
        for i, line in enumerate(self.overlay_lines):
            p.drawText(QPointF(box.left() + 8, box.top() + 5 + fm.ascent() + i * lh), line)

    # ------------------------------------------------------------------ divider drag
    def _near_divider(self, x: float) -> bool:
        dx = self.divider_x()
        return dx is not None and abs(x - dx) <= _GRAB

    def _move_divider_to(self, x: float) -> None:
        r = self.pane_rects().get("picture")
        if r is not None and r.width() > 0:
            self.set_split((x - r.left()) / r.width())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._mode == SPLIT and event.button() == Qt.MouseButton.LeftButton:
            r = self.pane_rects().get("picture")
            pos = event.position()
            if r is not None and (self._near_divider(pos.x()) or r.contains(pos)):
                # Grab the divider (or jump it to the click) and follow the mouse until release.
                self._dragging = True
                self._move_divider_to(pos.x())
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging:
            self._move_divider_to(event.position().x())
            event.accept()
            return
        near = self._mode == SPLIT and self._near_divider(event.position().x())
        self.setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging and event.button() == Qt.MouseButton.LeftButton:
            self._move_divider_to(event.position().x())
            self._dragging = False
            event.accept()
            return
        super().mouseReleaseEvent(event)
