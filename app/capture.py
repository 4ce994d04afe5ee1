"""The capture thread: grabs frames as fast as the source gives them and keeps only the newest.

When the model is slower than the camera, a queue would grow and the picture would lag further and further
behind. A one-slot mailbox instead overwrites the unprocessed frame, so the worker always gets the most recent
picture and latency stays at (at most) one capture interval plus one processing time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from app.frames import CapturedFrame
from app.sources import FrameSource, SourceError, SourceInfo, SourceLost

log = logging.getLogger(__name__)


class LatestFrame:
    """A thread-safe one-slot mailbox: ``put`` replaces, ``take`` waits for something newer than last time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: CapturedFrame | None = None
        self.dropped = 0  # frames overwritten before anyone took them
        self.delivered = 0

    def put(self, item: CapturedFrame) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest frame not yet taken, or None after ``timeout`` seconds."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is not None:
                self.delivered += 1
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None


EventFn = Callable[[str, str, str, str], None]  # (level, topic, message, reason)


class CaptureThread(threading.Thread):
    """Opens the source, reads it into ``slot`` until stopped, reconnects when the source is lost.

    ``on_event(level, "source", message)`` reports opening, failures and reconnection; ``on_open(info)`` reports
    the negotiated format. Files and pictures are paced at their frame rate; cameras pace themselves.
    """

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        slot: LatestFrame,
        on_event: EventFn,
        on_open: Callable[[SourceInfo], None] | None = None,
        retry_interval_s: float = 1.0,
    ) -> None:
        super().__init__(name="mattecam-capture", daemon=True)
        self._open_source = open_source
        self._slot = slot
        self._on_event = on_event
        self._on_open = on_open
        self._retry_interval_s = retry_interval_s
        self._stop_event = threading.Event()
        self.frames_read = 0
        self.source_open = False

    def stop(self) -> None:
        self._stop_event.set()

    def _try_open(self, announce_failure: bool, lost_before: bool) -> tuple[FrameSource, SourceInfo] | None:
        try:
            source = self._open_source()
            info = source.open()
        except SourceError as exc:
            if announce_failure:
                self._on_event("error", "source", str(exc), exc.reason)
            return None
        except Exception as exc:  # a broken driver must not kill the thread
            if announce_failure:
                self._on_event("error", "source", f"cannot open the source: {exc}", "unreadable")
            log.debug("source open failed", exc_info=True)
            return None
        message = ("source is back: " if lost_before else "source open: ") + info.description
        if info.note:
            message += f" ({info.note})"
        self._on_event("info", "source", message, "open")
        if self._on_open is not None:
            self._on_open(info)
        return source, info

    def run(self) -> None:
        source: FrameSource | None = None
        info: SourceInfo | None = None
        failures = 0
        lost_before = False
        next_due = 0.0
        try:
            while not self._stop_event.is_set():
                if source is None:
                    opened = self._try_open(announce_failure=failures == 0, lost_before=lost_before)
                    if opened is None:
                        failures += 1
                        self._stop_event.wait(self._retry_interval_s)
                        continue
                    (source, info), failures, next_due = opened, 0, time.monotonic()
                    self.source_open = True
                try:
                    frame = source.read()
                except SourceLost as exc:
                    self._on_event("warning", "source", f"{exc}; waiting for it to come back", "lost")
                    source.close()
                    source, lost_before, self.source_open = None, True, False
                    continue
                except Exception as exc:  # a driver error must not kill the capture thread
                    log.warning("reading the source failed", exc_info=True)
                    self._on_event("warning", "source", f"reading the source failed: {exc}; reopening", "lost")
                    source.close()
                    source, lost_before, self.source_open = None, True, False
                    continue
                if info is not None and not info.live:  # files: play at their own frame rate
                    next_due += 1.0 / info.fps
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        if self._stop_event.wait(delay):
                            break
                    elif delay < -1.0 / info.fps:
                        next_due = time.monotonic()
                self.frames_read += 1
                self._slot.put(CapturedFrame(frame, self.frames_read, time.monotonic()))
        finally:
            if source is not None:
                source.close()
            self.source_open = False
