"""Qt widgets of the desktop app (only ``app.window`` and these import PySide6)."""
