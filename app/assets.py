"""Where the bundled backgrounds and the demo clip live (``assets/`` next to the ``app`` package)."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def assets_dir() -> Path:
    """The assets folder; ``MATTECAM_ASSETS`` overrides it (packaged installs, tests)."""
    override = os.environ.get("MATTECAM_ASSETS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "assets"


def demo_clip_path() -> Path:
    return assets_dir() / "demo.mp4"


def bundled_backgrounds() -> list[Path]:
    """The bundled background pictures, sorted by name (empty if the folder is missing)."""
    folder = assets_dir() / "backgrounds"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def default_background() -> Path | None:
    """The picture used when the settings name none."""
    pictures = bundled_backgrounds()
    return pictures[0] if pictures else None
