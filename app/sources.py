"""Frame sources: a camera, a looping video file, a still picture. All deliver BGR uint8 frames.

Opening reports what was *actually* negotiated (cameras often deliver less than asked), and every failure is a
``SourceError`` with a sentence a user can act on. A camera that stops delivering mid-stream raises
``SourceLost`` from ``read()``; the capture thread then closes it and tries again until it comes back.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from app.backgrounds import BackgroundError, read_image

log = logging.getLogger(__name__)


class SourceError(Exception):
    """A source that cannot deliver frames. ``reason`` is one of: no_camera, busy, unreadable, lost."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


class SourceLost(SourceError):
    """The source delivered frames before and stopped (camera unplugged, file vanished)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="lost")


@dataclass(frozen=True)
class SourceInfo:
    description: str
    width: int
    height: int
    fps: float
    #: Cameras pace themselves; files and pictures are paced by the capture thread at ``fps``.
    live: bool
    #: What the user asked for, when it differs from what the device delivers.
    note: str = ""


class FrameSource(Protocol):
    def open(self) -> SourceInfo: ...

    def read(self) -> np.ndarray:
        """The next BGR uint8 frame; raises ``SourceLost`` when the source stops delivering."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """A source as the settings describe it."""

    kind: str  # camera | video | image | demo
    location: str = "0"  # camera index or device path, or a file path
    width: int = 1280
    height: int = 720
    fps: float = 30.0


CaptureFactory = Callable[..., Any]  # cv2.VideoCapture-like; replaceable in tests


def _camera_label(device: int | str) -> str:
    return f"camera {device}"


def _linux_device_path(device: int | str) -> str | None:
    if sys.platform.startswith("linux"):
        return f"/dev/video{device}" if isinstance(device, int) else str(device)
    return None


class CameraSource:
    """A webcam through OpenCV, asking for ``width`` x ``height`` at ``fps`` (MJPG, so 1080p/4K reach 30 fps)."""

    #: How long a freshly opened camera may take to deliver its first frame before we call it busy.
    FIRST_FRAME_TIMEOUT_S = 2.0
    #: Consecutive failed reads before the camera counts as unplugged.
    MAX_FAILED_READS = 5

    def __init__(
        self,
        device: int | str,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        capture_factory: CaptureFactory | None = None,
    ) -> None:
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self._factory = capture_factory or cv2.VideoCapture
        self._cap: Any = None
        self._first: np.ndarray | None = None

    def open(self) -> SourceInfo:
        label = _camera_label(self.device)
        dev_path = _linux_device_path(self.device)
        if dev_path is not None and not os.path.exists(dev_path):
            raise SourceError(f"No camera found ({dev_path} does not exist). Plug one in, or use the demo clip.",
                              reason="no_camera")
        cap = self._factory(self.device)
        if not cap.isOpened():
            cap.release()
            if dev_path is not None:  # the device node exists, so it is there but refused us
                raise SourceError(f"{label} exists but cannot be opened: another application may be using it, "
                                  "or you lack permission (add yourself to the 'video' group).", reason="busy")
            raise SourceError(f"No camera found at {label}, or it is in use by another application.",
                              reason="no_camera")
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames where supported
        first = None
        deadline = time.monotonic() + self.FIRST_FRAME_TIMEOUT_S
        while time.monotonic() < deadline:
            ok, frame = cap.read()
            if ok and frame is not None:
                first = frame
                break
            time.sleep(0.05)
        if first is None:
            cap.release()
            raise SourceError(f"{label} opened but delivers no frames: it is probably in use by another "
                              "application (close it, or pick another camera).", reason="busy")
        self._cap, self._first = cap, first
        h, w = first.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or self.fps
        note = ""
        if (w, h) != (self.width, self.height):
            note = f"asked for {self.width}x{self.height}, the camera delivers {w}x{h}"
        return SourceInfo(f"{label}: {w}x{h} @ {fps:g} fps", w, h, fps, live=True, note=note)

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceLost("camera is not open")
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        for _ in range(self.MAX_FAILED_READS):
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return frame
            time.sleep(0.02)
        raise SourceLost(f"{_camera_label(self.device)} stopped delivering frames (unplugged?)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A video file, looped forever (the demo clip, or a recording to test with)."""

    def __init__(self, path: str | Path, loop: bool = True, capture_factory: CaptureFactory | None = None) -> None:
        self.path = Path(path)
        self.loop = loop
        self._factory = capture_factory or cv2.VideoCapture
        self._cap: Any = None
        self._first: np.ndarray | None = None

    def _open_capture(self) -> tuple[Any, np.ndarray]:
        cap = self._factory(str(self.path))
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            cap.release()
            raise SourceError(f"{self.path.name} is not a video OpenCV can decode", reason="unreadable")
        return cap, frame

    def open(self) -> SourceInfo:
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}", reason="unreadable")
        self._cap, self._first = self._open_capture()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        fps = fps if 1.0 <= fps <= 240.0 else 25.0
        h, w = self._first.shape[:2]
        return SourceInfo(f"{self.path.name}: {w}x{h} @ {fps:g} fps (looped)", w, h, fps, live=False)

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise SourceLost("video is not open")
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return frame
        if not self.loop:
            raise SourceLost(f"{self.path.name} ended")
        # Loop by reopening: seeking is unreliable for some containers.
        self._cap.release()
        try:
            self._cap, frame = self._open_capture()
        except SourceError as exc:
            self._cap = None
            raise SourceLost(str(exc)) from exc
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource:
    """A still picture, repeated at ``fps`` (to try backgrounds on a photo)."""

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        self.path = Path(path)
        self.fps = fps
        self._image: np.ndarray | None = None

    def open(self) -> SourceInfo:
        try:
            self._image = read_image(self.path)
        except BackgroundError as exc:
            raise SourceError(str(exc).replace("background picture", "picture"), reason="unreadable") from exc
        h, w = self._image.shape[:2]
        return SourceInfo(f"{self.path.name}: {w}x{h} (still)", w, h, self.fps, live=False)

    def read(self) -> np.ndarray:
        if self._image is None:
            raise SourceLost("picture is not open")
        return self._image.copy()

    def close(self) -> None:
        self._image = None


def make_source(spec: SourceSpec) -> FrameSource:
    """The source ``spec`` describes (not opened yet)."""
    from app.assets import demo_clip_path

    if spec.kind == "camera":
        location = spec.location.strip()
        device: int | str = int(location) if location.isdigit() else location
        return CameraSource(device, spec.width, spec.height, spec.fps)
    if spec.kind == "video":
        return VideoFileSource(spec.location)
    if spec.kind == "image":
        return ImageSource(spec.location)
    if spec.kind == "demo":
        return VideoFileSource(demo_clip_path())
    raise SourceError(f"unknown source kind {spec.kind!r}")


@dataclass(frozen=True)
class CameraEntry:
    label: str
    device: int | str


def list_cameras(max_probe: int = 4) -> list[CameraEntry]:
    """Cameras to offer in the picker. On Linux this reads sysfs (no device is opened, so it is instant)."""
    if sys.platform.startswith("linux"):
        entries = []
        for node in sorted(glob.glob("/sys/class/video4linux/video*"), key=lambda p: int(p.rsplit("video", 1)[1])):
            index_file, name_file = Path(node, "index"), Path(node, "name")
            # Each UVC camera exposes a capture node (index 0) and a metadata node: offer only the first.
            if index_file.exists() and index_file.read_text().strip() not in ("", "0"):
                continue
            name = name_file.read_text().strip() if name_file.exists() else "camera"
            dev = "/dev/" + Path(node).name
            entries.append(CameraEntry(f"{name} ({dev})", dev))
        return entries
    entries = []
    for index in range(max_probe):
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            entries.append(CameraEntry(f"camera {index}", index))
        cap.release()
    return entries
