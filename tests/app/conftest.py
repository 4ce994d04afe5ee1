"""Fixtures for the app tests (Qt offscreen, isolated config folder, fake virtual camera, small media)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from app_doubles import FakeVirtualCamBackend, MissingVirtualCamBackend, write_video


@pytest.fixture
def fake_vcam():
    import pyvirtualcam

    FakeVirtualCamBackend.frames = []
    FakeVirtualCamBackend.opened = []
    FakeVirtualCamBackend.closed = 0
    pyvirtualcam.register_backend("fake", FakeVirtualCamBackend)
    pyvirtualcam.register_backend("missing", MissingVirtualCamBackend)
    return FakeVirtualCamBackend


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """Every test gets its own config folder: nothing touches the real user's settings."""
    cfg = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    monkeypatch.setenv("APPDATA", str(cfg))
    return cfg / "mattecam"


@pytest.fixture
def video_file(tmp_path):
    return write_video(tmp_path / "clip.mp4")


@pytest.fixture
def background_file(tmp_path):
    """A 200x100 picture: left half pure red, right half pure blue (BGR), so aspect-fill is checkable."""
    from app_doubles import write_split_picture

    return write_split_picture(tmp_path / "bg.png")
