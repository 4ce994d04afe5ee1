"""The background gallery: thumbnails of the bundled and the user's pictures; one click picks one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from app.backgrounds import BackgroundError, aspect_fill, read_image

THUMB = QSize(96, 54)
PATH_ROLE = Qt.ItemDataRole.UserRole


def thumbnail(image: np.ndarray) -> QPixmap:
    small = np.ascontiguousarray(aspect_fill(image, (THUMB.width(), THUMB.height())))
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    qimg = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())


class BackgroundGallery(QListWidget):
    """Emits ``picked(path)`` when the user clicks a picture."""

    picked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(THUMB)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSpacing(4)
        self.setMinimumHeight(2 * THUMB.height() + 40)
        self.setWordWrap(True)
        self.itemClicked.connect(lambda item: self.picked.emit(item.data(PATH_ROLE)))

    def add_picture(self, path: str | Path, image: np.ndarray | None = None) -> QListWidgetItem:
        """Add ``path`` (decoding it unless ``image`` is given); ``BackgroundError`` if it is not a picture."""
        path = str(path)
        existing = self.item_for(path)
        if existing is not None:
            return existing
        image = read_image(path) if image is None else image
        item = QListWidgetItem(QIcon(thumbnail(image)), Path(path).stem)
        item.setData(PATH_ROLE, path)
        item.setToolTip(path)
        self.addItem(item)
        return item

    def add_pictures(self, paths: list[str] | list[Path]) -> list[str]:
        """Add every readable picture; returns messages for the ones that could not be read."""
        problems = []
        for path in paths:
            try:
                self.add_picture(path)
            except BackgroundError as exc:
                problems.append(str(exc))
        return problems

    def item_for(self, path: str) -> QListWidgetItem | None:
        for i in range(self.count()):
            if self.item(i).data(PATH_ROLE) == str(path):
                return self.item(i)
        return None

    def select_path(self, path: str) -> None:
        item = self.item_for(path)
        self.setCurrentItem(item) if item is not None else self.clearSelection()

    def paths(self) -> list[str]:
        return [self.item(i).data(PATH_ROLE) for i in range(self.count())]
