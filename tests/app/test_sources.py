"""Sources: cameras (through a fake cv2.VideoCapture), looping video files, pictures, and their failures."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from app_doubles import write_split_picture

from app.assets import bundled_backgrounds, demo_clip_path
from app.sources import (
    CameraSource,
    ImageSource,
    SourceError,
    SourceLost,
    SourceSpec,
    VideoFileSource,
    make_source,
)


class FakeCapture:
    """Stands in for cv2.VideoCapture on a camera. ``script`` controls what read() returns, shared per test."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.props = {cv2.CAP_PROP_FPS: state.get("fps", 30.0)}
        self.released = False
        state.setdefault("instances", []).append(self)

    def isOpened(self) -> bool:
        return self.state.get("opens", True)

    def set(self, prop, value) -> bool:
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS):
            self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        with self.state.setdefault("lock", threading.Lock()):
            self.state["reads"] = self.state.get("reads", 0) + 1
            if not self.state.get("delivers", True):
                return False, None
        max_w, max_h = self.state.get("max_size", (1920, 1080))
        w = int(min(self.props.get(cv2.CAP_PROP_FRAME_WIDTH, 640), max_w))
        h = int(min(self.props.get(cv2.CAP_PROP_FRAME_HEIGHT, 480), max_h))
        frame = np.full((h, w, 3), self.state["reads"] % 256, np.uint8)
        return True, frame

    def release(self) -> None:
        self.released = True


@pytest.fixture
def device_node(tmp_path):
    """A file standing in for /dev/videoN (the camera code checks the node exists before opening it)."""
    node = tmp_path / "video0"
    node.write_bytes(b"")
    return str(node)


def camera(device_node, state, **kw):
    return CameraSource(device_node, capture_factory=lambda dev: FakeCapture(state), **kw)


def test_camera_reports_negotiated_size_when_it_delivers_less_than_asked(device_node):
    state = {"max_size": (1920, 1080)}
    info = camera(device_node, state, width=3840, height=2160, fps=30).open()
    assert (info.width, info.height) == (1920, 1080)
    assert "3840x2160" in info.note and "1920x1080" in info.note
    assert info.live


def test_camera_at_the_asked_size_has_no_note(device_node):
    source = camera(device_node, {}, width=1280, height=720)
    info = source.open()
    assert (info.width, info.height, info.note) == (1280, 720, "")
    assert source.read().shape == (720, 1280, 3)


def test_no_camera_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="No camera") as err:
        CameraSource(str(tmp_path / "video9")).open()
    assert err.value.reason == "no_camera"


def test_camera_that_opens_but_gives_no_frames_is_reported_busy(device_node, monkeypatch):
    monkeypatch.setattr(CameraSource, "FIRST_FRAME_TIMEOUT_S", 0.1)
    state = {"delivers": False}
    with pytest.raises(SourceError, match="in use by another application") as err:
        camera(device_node, state).open()
    assert err.value.reason == "busy"
    assert state["instances"][0].released  # the half-open device is released


def test_camera_that_refuses_to_open_is_reported_busy_or_no_permission(device_node):
    with pytest.raises(SourceError, match="cannot be opened") as err:
        camera(device_node, {"opens": False}).open()
    assert err.value.reason == "busy"


def test_unplugged_camera_raises_source_lost(device_node):
    state = {}
    source = camera(device_node, state)
    source.open()
    source.read()
    state["delivers"] = False
    with pytest.raises(SourceLost, match="unplugged"):
        source.read()


def test_video_file_loops_forever(video_file):
    source = VideoFileSource(video_file)
    info = source.open()
    assert (info.width, info.height) == (160, 120) and not info.live
    frames = [source.read() for _ in range(30)]  # the clip has 12 frames
    assert all(f.shape == (120, 160, 3) for f in frames)
    assert np.abs(frames[0].astype(int) - frames[12].astype(int)).mean() < 3  # frame 12 is frame 0 again
    source.close()


def test_missing_and_corrupt_video_files_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "none.mp4").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(SourceError, match="bad.mp4"):
        VideoFileSource(bad).open()


def test_image_source_repeats_the_picture(tmp_path):
    path = write_split_picture(tmp_path / "p.png")
    source = ImageSource(path)
    info = source.open()
    assert (info.width, info.height) == (200, 100)
    a, b = source.read(), source.read()
    assert np.array_equal(a, b) and a is not b


def test_image_source_reports_unreadable_files(tmp_path):
    bad = tmp_path / "p.png"
    bad.write_text("nope")
    with pytest.raises(SourceError, match="p.png"):
        ImageSource(bad).open()


def test_bundled_demo_clip_and_backgrounds_exist_and_open():
    assert demo_clip_path().is_file()
    source = make_source(SourceSpec(kind="demo"))
    info = source.open()
    assert info.width >= 320 and info.fps > 0
    source.close()
    pictures = bundled_backgrounds()
    assert 3 <= len(pictures) <= 5
    for p in pictures:
        img = cv2.imread(str(p))
        assert img is not None and max(img.shape[:2]) <= 1920


def test_assets_stay_small():
    from app.assets import assets_dir

    total = sum(p.stat().st_size for p in assets_dir().rglob("*") if p.is_file())
    assert total < 3_000_000
