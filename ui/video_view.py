"""The picture: input and enhanced frames painted with QPainter, side by side or split."""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from .imaging import fit_rect, numpy_to_qimage

SIDE_BY_SIDE = "side"
SPLIT = "split"
MODES = (SIDE_BY_SIDE, SPLIT)

_GAP = 4          # pixels between the two panes
_GRAB = 10        # how close (pixels) a press must be to the divider to grab it


class VideoView(QWidget):
    """Paints the newest ``(input, enhanced)`` pair, fitted to the widget with its aspect ratio.

    Modes: ``"side"`` (input left, enhanced right) and ``"split"`` (one picture, input left of a
    draggable divider, enhanced right of it). Frames are numpy ``(H, W, 3)`` uint8 RGB arrays wrapped
    in QImages over the same memory (explicit bytesPerLine); the arrays are kept referenced for as
    long as their QImages may be painted. Nothing here copies or converts pixels per frame.

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
        self._pending_capture: float | None = None
        self._new_frame = False
        self.overlay_lines: list[str] = []
        self.overlay_visible = True
        self.placeholder = "Drop a video file here, or press Ctrl+O (F1 for help)"
        self.smooth = True
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
        self._pending_capture = capture_time
        self._new_frame = True
        self.update()

    def clear(self) -> None:
        self._input = self._enhanced = None
        self._qin = self._qout = None
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
                p.drawImage(rects["input"], self._qin, QRectF(self._qin.rect()))
                p.drawImage(rects["enhanced"], self._qout, QRectF(self._qout.rect()))
                self._paint_labels(p, rects["input"], rects["enhanced"])
            if self.overlay_visible and self.overlay_lines:
                self._paint_overlay(p)
        finally:
            p.end()
        if self._new_frame:
            self._new_frame = False
            cap = self._pending_capture
            latency = time.perf_counter() - cap if cap else float("nan")
            self.frame_painted.emit(latency)

    def _paint_split(self, p: QPainter, r: QRectF) -> None:
        qin, qout = self._qin, self._qout
        assert qin is not None and qout is not None
        s = self._split
        if s > 0:
            p.drawImage(QRectF(r.left(), r.top(), r.width() * s, r.height()), qin,
                        QRectF(0, 0, qin.width() * s, qin.height()))
        if s < 1:
            p.drawImage(QRectF(r.left() + r.width() * s, r.top(), r.width() * (1 - s), r.height()), qout,
                        QRectF(qout.width() * s, 0, qout.width() * (1 - s), qout.height()))
        x = r.left() + r.width() * s
        p.setPen(QPen(QColor(255, 255, 255, 220), 2))
        p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
        p.setBrush(QColor(255, 255, 255, 220))
        p.drawEllipse(QPointF(x, r.center().y()), 7, 7)
        self._paint_labels(p, QRectF(r.left(), r.top(), r.width() * s, r.height()),
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
