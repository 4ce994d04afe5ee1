"""A dismissable message bar at the top of the window, with an optional action button.

Problems are told here in plain words, never in a modal dialog: the call in progress must keep running.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

_COLORS = {"info": "#1e3a5f", "warning": "#6b4e00", "error": "#7a1c1c"}


class NoticeBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action_button = QPushButton()
        self.close_button = QPushButton("Dismiss")
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.close_button)
        self.close_button.clicked.connect(self.hide)
        self._action: Callable[[], None] | None = None
        self.action_button.clicked.connect(self._run_action)
        self.level = ""
        self.topic = ""
        self.hide()

    def show_message(
        self, level: str, text: str, action: tuple[str, Callable[[], None]] | None = None, topic: str = ""
    ) -> None:
        """Show ``text``; ``topic`` lets the owner clear it when that problem goes away (e.g. "source")."""
        self.level, self.topic = level, topic
        self.setStyleSheet(f"#notice {{ background: {_COLORS.get(level, _COLORS['info'])}; border-radius: 4px; }}"
                           " QLabel { color: white; }")
        self.label.setText(text)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.show()

    def clear(self, topic: str) -> None:
        """Hide the bar if it shows a message about ``topic``."""
        if self.isVisible() and self.topic == topic:
            self.hide()

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _run_action(self) -> None:
        action = self._action
        self.hide()
        if action is not None:
            action()
