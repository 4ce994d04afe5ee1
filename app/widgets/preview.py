"""The live preview: paints the newest picture, scaled to fit, with the timing overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


def bgr_to_qimage(image: np.ndarray) -> QImage:
    """Wrap a contiguous BGR uint8 array (no copy; the caller keeps the array alive while it is painted)."""
    h, w = image.shape[:2]
    return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_BGR888)


class PreviewWidget(QWidget):
    """Only paints: frames arrive ready-made from the pipeline's preview sink."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self._array: np.ndarray | None = None
        self._image: QImage | None = None
        self._lines: list[str] = []
        self._banner = ""
        self._placeholder = "Starting..."
        self.frames_shown = 0

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    def show_frame(self, image: np.ndarray, lines: list[str], banner: str = "") -> None:
        self._array = image  # keeps the buffer alive for the QImage
        self._image = bgr_to_qimage(image)
        self._lines, self._banner = lines, banner
        self.frames_shown += 1
        self.update()

    def show_placeholder(self, text: str) -> None:
        self._array = self._image = None
        self._placeholder = text
        self.update()

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(18, 18, 18))
        if self._image is None:
            p.setPen(QColor(220, 220, 220))
            p.drawText(self.rect().adjusted(20, 20, -20, -20),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = int(iw * scale), int(ih * scale)
        target = QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(target, self._image)
        self._paint_text(p, target)

    def _paint_text(self, p: QPainter, target: QRect) -> None:
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(9)
        p.setFont(font)
        metrics = p.fontMetrics()
        line_h = metrics.height()
        if self._lines:
            box_w = max(metrics.horizontalAdvance(line) for line in self._lines) + 12
            box = QRect(target.left() + 6, target.top() + 6, box_w, line_h * len(self._lines) + 8)
            p.fillRect(box, QColor(0, 0, 0, 150))
            p.setPen(QColor(235, 235, 235))
            for i, line in enumerate(self._lines):
                p.drawText(box.left() + 6, box.top() + 4 + metrics.ascent() + i * line_h, line)
        if self._banner:
            box = QRect(target.left(), target.bottom() - line_h - 10, target.width(), line_h + 10)
            p.fillRect(box, QColor(120, 20, 20, 190))
            p.setPen(QColor(255, 255, 255))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self._banner)
