"""Test doubles for the app tests: a fast fake engine, fake pyvirtualcam backends, generated media."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np


@dataclass
class FakeMatte:
    alpha: np.ndarray
    trimap: np.ndarray
    regions: np.ndarray
    timings_ms: dict = field(default_factory=dict)


class FakeClock:
    """A clock (seconds) that only moves when told: frame times without timed tests."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000.0


class FakeEngine:
    """Alpha = a soft-edged ellipse in the middle of the frame; records every call. ``delay_s`` fakes a slow model.

    Clear background (alpha exactly 0) outside the ellipse, clear foreground inside, a soft band between.
    With a ``clock`` (``FakeClock``) each call moves it on by ``cost_ms``: a slow model in fake time.
    """

    def __init__(self, delay_s: float = 0.0, clock: FakeClock | None = None, cost_ms: float = 0.0) -> None:
        self.delay_s = delay_s
        self.clock = clock
        self.cost_ms = cost_ms
        self.use_cra = True
        self.region_budget = None
        self.calls = 0
        self.cra_seen: list[bool] = []
        self.budgets_seen: list[int | None] = []
        self.shapes: list[tuple[int, ...]] = []
        self.lock = threading.Lock()

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> FakeMatte:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.clock is not None:
            self.clock.advance(self.cost_ms)
        h, w = frame.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = np.sqrt(((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.25 * w)) ** 2)
        alpha = np.clip((1.0 - d) * 8.0 + 0.5, 0.0, 1.0).astype(np.float32)
        h8, w8 = -(-h // 8), -(-w // 8)
        small = cv2.resize(alpha, (w8, h8), interpolation=cv2.INTER_AREA)
        trimap = np.where(small > 0.99, 2, np.where(small < 0.01, 0, 1)).astype(np.uint8)
        regions = np.argwhere(trimap == 1).astype(np.int32)
        with self.lock:
            self.calls += 1
            self.cra_seen.append(self.use_cra)
            self.budgets_seen.append(self.region_budget)
            self.shapes.append(frame.shape)
        return FakeMatte(alpha, trimap, regions, {"coarse": 1.0, "knn": 0.1, "refine": 0.5, "total": 1.6})

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
        return self.matte_detailed(frame, channels).alpha


class FakeVirtualCamBackend:
    """A pyvirtualcam backend that keeps what it receives (registered with ``pyvirtualcam.register_backend``)."""

    frames: ClassVar[list[np.ndarray]] = []
    opened: ClassVar[list[dict]] = []
    closed = 0

    def __init__(self, *, width, height, fps, fourcc, device, **kw) -> None:
        self._device = device or "/dev/fakecam0"
        FakeVirtualCamBackend.opened.append({"width": width, "height": height, "fps": fps, "fourcc": fourcc})

    def close(self) -> None:
        FakeVirtualCamBackend.closed += 1

    def send(self, frame: np.ndarray) -> None:
        FakeVirtualCamBackend.frames.append(frame.copy())

    def device(self) -> str:
        return self._device

    def native_fourcc(self):
        return None


class MissingVirtualCamBackend:
    """Behaves like v4l2loopback on a machine without the module: the constructor raises RuntimeError."""

    def __init__(self, **kw) -> None:
        raise RuntimeError("No v4l2 loopback device found at /dev/video[0-99]. Did you run 'modprobe v4l2loopback'?")


def write_video(path: Path, n: int = 12, size: tuple[int, int] = (160, 120), fps: float = 30.0) -> Path:
    """A small mp4v clip whose frames differ (a moving bar), so dropped/looped frames are detectable."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    w, h = size
    for i in range(n):
        frame = np.full((h, w, 3), (40, 90, 160), np.uint8)
        x = (i * 7) % max(1, w - 10)
        frame[:, x : x + 10] = (230, 230, 230)
        writer.write(frame)
    writer.release()
    return path


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def write_split_picture(path: Path) -> Path:
    """A 200x100 picture: left half pure red, right half pure blue (BGR)."""
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = (0, 0, 255)
    img[:, 100:] = (255, 0, 0)
    cv2.imwrite(str(path), img)
    return path


def read_video_frames(path) -> list[np.ndarray]:
    """Every frame of a video file, decoded with OpenCV (what a player would show)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            cap.release()
            return frames
        frames.append(frame)
