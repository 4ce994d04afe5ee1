"""Where composites go: the virtual camera, the preview, a video file.

Frames are BGR end to end (OpenCV's order), so the only colour conversion is the one pyvirtualcam's native
backend does anyway into the device's own format (we open it with ``PixelFormat.BGR``). A sink that fails
raises ``SinkError`` with a message for the user; the pipeline then drops that sink and keeps the others (the
preview in particular) running.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2

from app.frames import FrameResult, PreviewFrame

log = logging.getLogger(__name__)


class SinkError(Exception):
    """A sink that cannot take frames; the message says what to do about it."""


class Sink(Protocol):
    name: str

    def send(self, result: FrameResult) -> None: ...

    def close(self) -> None: ...


def virtual_camera_help(error: str = "") -> str:
    """What to do when no virtual camera device exists, for this operating system."""
    if sys.platform.startswith("linux"):
        how = ("Linux needs the v4l2loopback kernel module: install it (e.g. 'sudo apt install v4l2loopback-dkms') "
               "and load it with 'sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=MatteCam'. "
               "exclusive_caps=1 is what makes Chrome, Zoom and Teams list the device.")
    elif sys.platform == "darwin":
        how = "macOS needs OBS Studio 30+: install it and start its virtual camera once to register the extension."
    else:
        how = "Windows needs OBS Studio (its virtual camera) or Unity Capture installed."
    detail = f" (details: {error.strip().splitlines()[0]})" if error.strip() else ""
    return f"Virtual camera unavailable. {how}{detail}"


class VirtualCameraSink:
    """Sends composites to a virtual camera via pyvirtualcam.

    The device is opened on the first frame with that frame's size and the source's FPS, and reopened if the
    size changes (a new camera resolution), so the virtual camera always matches the output.
    ``backend``/``device`` = None lets pyvirtualcam choose (v4l2loopback, OBS, Unity Capture per OS).
    """

    name = "virtual camera"

    def __init__(self, fps: float = 30.0, backend: str | None = None, device: str | None = None) -> None:
        self.fps = fps
        self.backend = backend or None
        self.device = device or None
        self._cam: Any = None
        # send() runs on the worker, close() may come from the GUI thread at shutdown: one lock for both.
        self._lock = threading.Lock()
        self._closed = False
        self.status = "stopped"

    def _open(self, width: int, height: int) -> None:
        import pyvirtualcam
        from pyvirtualcam.camera import BACKENDS

        if self.backend is not None and self.backend not in BACKENDS:
            self.status = "unavailable"
            raise SinkError(f"unknown virtual camera backend {self.backend!r} "
                            f"(this system has: {', '.join(BACKENDS) or 'none'})")
        try:
            self._cam = pyvirtualcam.Camera(width, height, self.fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                            backend=self.backend, device=self.device)
        except (RuntimeError, OSError, ValueError) as exc:
            self._cam = None
            self.status = "unavailable"
            raise SinkError(virtual_camera_help(str(exc))) from exc
        self.status = f"on: {self._cam.device} ({width}x{height} @ {self.fps:g} fps, {self._cam.backend})"
        log.info("virtual camera %s", self.status)

    def open(self, width: int, height: int) -> None:
        """Open the device now (``send`` would open it on the first frame); ``SinkError`` if it cannot."""
        with self._lock:
            self._release()
            self._closed = False
            self._open(width, height)

    def _release(self) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None

    def send(self, result: FrameResult) -> None:
        frame = result.composite
        h, w = frame.shape[:2]
        with self._lock:
            if self._closed:  # closed from another thread while this frame was being made
                return
            if self._cam is not None and (self._cam.width, self._cam.height) != (w, h):
                self._release()
            if self._cam is None:
                self._open(w, h)
            try:
                self._cam.send(frame)
            except Exception as exc:
                self._release()
                self.status = "failed"
                raise SinkError(f"virtual camera stopped: {exc}") from exc

    @property
    def is_open(self) -> bool:
        return self._cam is not None

    def close(self) -> None:
        """Release the device for good (safe from any thread; later sends are ignored)."""
        with self._lock:
            self._closed = True
            self._release()
            if self.status.startswith("on"):
                self.status = "stopped"


class CallbackSink:
    """Hands each result to a function (the window's preview bridge, a test's recorder)."""

    def __init__(self, name: str, callback: Callable[[FrameResult], None]) -> None:
        self.name = name
        self._callback = callback

    def send(self, result: FrameResult) -> None:
        self._callback(result)

    def close(self) -> None:
        pass


#: Containers OpenCV can *encode* without extra codecs on a stock install (H.264 usually cannot).
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}


class RecorderSink:
    """Writes composites to a video file; opened on the first frame with that frame's size.

    ``realtime=True`` (live recording) keeps the file's timeline equal to wall-clock time: when the model
    delivers fewer frames than the file's ``fps``, each frame is repeated for as long as it was on screen, so a
    recording made at 6 processed frames per second does not play back five times too fast.
    ``realtime=False`` (``mattecam render``) writes every frame exactly once.
    """

    name = "recorder"

    def __init__(self, path: str | Path, fps: float = 30.0, realtime: bool = False) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC_BY_SUFFIX:
            raise SinkError(f"cannot record to {self.path.name}: use one of {', '.join(FOURCC_BY_SUFFIX)}")
        self.fourcc = FOURCC_BY_SUFFIX[suffix]
        self.fps = fps if fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.realtime = realtime
        self._start = 0.0
        self.frames_written = 0

    def _copies_due(self) -> int:
        """How many times to write the next frame so the file keeps pace with the clock (live mode)."""
        if not self.realtime:
            return 1
        now = time.monotonic()
        if self.frames_written == 0:
            self._start = now
            return 1
        due = int((now - self._start) * self.fps) + 1 - self.frames_written
        return min(due, int(5 * self.fps))  # a long stall shows as (at most) a 5 s freeze

    def send(self, result: FrameResult) -> None:
        frame = result.composite
        size = (frame.shape[1], frame.shape[0])
        with self._lock:
            if self._closed:
                return
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
                if not writer.isOpened():
                    raise SinkError(f"cannot write {self.path} with the {self.fourcc} codec")
                self._writer, self._size = writer, size
            copies = self._copies_due()
            if copies <= 0:  # faster than the file's frame rate: skip this one
                return
            if size != self._size:  # the source changed resolution: keep the file consistent
                frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
            for _ in range(copies):
                self._writer.write(frame)
            self.frames_written += copies

    @property
    def closed(self) -> bool:
        """True once the file is finished (``close`` ran)."""
        return self._closed

    def close(self) -> None:
        """Finish the file (safe from any thread; later sends are ignored)."""
        with self._lock:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
                log.info("recorded %d frames to %s", self.frames_written, self.path)
            # Only now: ``closed`` is read without the lock (the GUI polls it to say the file is ready), and
            # set before release() it let a reader open an mp4 whose index was not yet written.
            self._closed = True


class PreviewSink:
    """Hands the newest frame, shrunk to ``max_width``, to a display that may be slower than the pipeline.

    ``notify()`` is called only when the display has taken the previous frame, so a busy GUI never builds up a
    backlog of frames (the same newest-wins rule as the capture side).
    """

    name = "preview"

    def __init__(self, notify: Callable[[], None], max_width: int = 960) -> None:
        self._notify = notify
        self.max_width = max_width
        self._lock = threading.Lock()
        self._latest: PreviewFrame | None = None
        self._pending = False

    def send(self, result: FrameResult) -> None:
        h, w = result.composite.shape[:2]
        if w > self.max_width:
            size = (self.max_width, max(1, round(h * self.max_width / w)))

            def shrink(img, interp=cv2.INTER_LINEAR):
                return cv2.resize(img, size, interpolation=interp)

            composite, frame, alpha = shrink(result.composite), shrink(result.frame), shrink(result.alpha)
        else:
            composite, frame, alpha = result.composite, result.frame, result.alpha
        preview = PreviewFrame(
            composite=composite, frame=frame, alpha=alpha, trimap=result.trimap, regions=result.regions,
            model_size=result.model_size, full_size=(w, h), timings_ms=dict(result.timings_ms), fps=result.fps,
            dropped=result.dropped, warning=result.warning, index=result.index, quality=result.quality,
        )
        with self._lock:
            self._latest = preview
            notify, self._pending = not self._pending, True
        if notify:
            self._notify()

    def take(self) -> PreviewFrame | None:
        """The newest frame since the last call (None if nothing new); re-arms the notification."""
        with self._lock:
            preview, self._latest, self._pending = self._latest, None, False
        return preview

    def close(self) -> None:
        pass
