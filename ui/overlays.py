"""Widgets drawn over the picture: the error / info banner and the keyboard help overlay."""

from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from .shortcuts import SHORTCUTS


class Banner(QFrame):
    """A one-line message strip above the picture: red for errors, blue for information.

    ``text()`` returns what is shown (tests read it); ``kind`` is ``"error"`` or ``"info"``.
    """

    closed = pyqtSignal()

    _STYLES = {
        "error": "background:#8b1e1e; color:white;",
        "info": "background:#1e4f8b; color:white;",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "info"
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("\u00d7")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self._label, 1)
        lay.addWidget(close)
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind if kind in self._STYLES else "error"
        self.setStyleSheet(self._STYLES[self.kind])
        self._label.setText(text)
        self.show()

    def text(self) -> str:
        return self._label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()


class HelpOverlay(QWidget):
    """Semi-transparent panel over the picture listing every shortcut; any key or click closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            parent = self.parentWidget()
            if parent is not None:
                self.setGeometry(parent.rect())
            self.show()
            self.raise_()
            self.setFocus()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            p.fillRect(self.rect(), QColor(0, 0, 0, 190))
            fm = p.fontMetrics()
            lh = fm.height() + 4
            key_w = max(fm.horizontalAdvance(" / ".join(s.keys)) for s in SHORTCUTS) + 24
            help_w = max(fm.horizontalAdvance(s.help) for s in SHORTCUTS)
            total_h = lh * (len(SHORTCUTS) + 2)
            x0 = max(10.0, (self.width() - key_w - help_w) / 2)
            y0 = max(10.0, (self.height() - total_h) / 2)
            p.setPen(QColor(255, 255, 255))
            p.drawText(QRectF(x0, y0, key_w + help_w, lh), Qt.AlignmentFlag.AlignLeft,
                       "Keyboard shortcuts (any key closes)")
            for i, s in enumerate(SHORTCUTS, start=2):
                y = y0 + i * lh
                p.setPen(QColor(255, 210, 90))
                p.drawText(QRectF(x0, y, key_w, lh), Qt.AlignmentFlag.AlignLeft, " / ".join(s.keys))
                p.setPen(QColor(235, 235, 235))
                p.drawText(QRectF(x0 + key_w, y, help_w + 4, lh), Qt.AlignmentFlag.AlignLeft, s.help)
        finally:
            p.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        self.hide()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.hide()
        event.accept()
