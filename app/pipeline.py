"""The live pipeline: source -> engine -> compositor -> sinks, on two plain Python threads (no Qt).

- The capture thread (``app.capture``) keeps only the newest frame, so latency stays bounded however slow the
  model is.
- The worker thread takes that frame, mattes and composites it (``FrameProcessor``), and hands the result to
  every sink.
- Changes (CRA on/off, target FPS, background, smoothing, sinks, engine) are queued with ``call_soon`` and
  applied by the worker *between* frames, so no frame ever sees half a change and nothing needs a restart.

The GUI, the ``stream`` command and the tests all drive this same class.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.backgrounds import Background
from app.capture import CaptureThread, LatestFrame
from app.processing import FrameProcessor, MatteEngine, MatteError
from app.sinks import Sink, SinkError
from app.smoothing import TemporalSmoother
from app.sources import FrameSource, SourceInfo
from matting_core.adaptive import QualitySetting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineEvent:
    """Something the user should hear about. ``topic``: source, matte, sink, background, engine, pipeline."""

    level: str  # info | warning | error
    topic: str
    message: str
    #: Machine-readable cause where it matters: no_camera, busy, unreadable, lost, open (source events).
    reason: str = ""


@dataclass
class PipelineStats:
    frames: int = 0
    fps: float = 0.0
    dropped: int = 0
    last_timings_ms: dict[str, float] = field(default_factory=dict)
    #: Adaptive quality of the last frame (None when off).
    quality: QualitySetting | None = None


EventCallback = Callable[[PipelineEvent], None]


class Pipeline:
    """Owns the two threads. Safe to call from any thread (the GUI's, a test's)."""

    def __init__(
        self,
        engine: MatteEngine,
        processor: FrameProcessor | None = None,
        sinks: list[Sink] | None = None,
        on_event: EventCallback | None = None,
        on_source_open: Callable[[SourceInfo], None] | None = None,
        retry_interval_s: float = 1.0,
    ) -> None:
        from app.compositor import Compositor

        self.processor = processor if processor is not None else FrameProcessor(engine, Compositor())
        self.processor.engine = engine
        self._sinks: list[Sink] = list(sinks or [])
        self._on_event = on_event or (lambda event: None)
        self._on_source_open = on_source_open
        self._retry_interval_s = retry_interval_s
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._slot = LatestFrame()
        self._capture: CaptureThread | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_message: tuple[str, str] | None = None
        self.source_info: SourceInfo | None = None
        self.stats = PipelineStats()
        self._done_times: deque[float] = deque(maxlen=30)  # worker-only: finish times for the FPS figure

    # ----------------------------------------------------------------------------------------------- events
    def _emit(self, level: str, topic: str, message: str, reason: str = "") -> None:
        if self._last_message == (topic, message):  # the same failure every frame is one message
            return
        self._last_message = (topic, message)
        getattr(log, "warning" if level == "warning" else "error" if level == "error" else "info")(message)
        try:
            self._on_event(PipelineEvent(level, topic, message, reason))
        except Exception:
            log.exception("event callback failed")

    def _source_opened(self, info: SourceInfo) -> None:
        self.source_info = info
        if self._on_source_open is not None:
            self._on_source_open(info)

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    @property
    def dropped_frames(self) -> int:
        return self._slot.dropped

    def start(self, open_source: Callable[[], FrameSource]) -> None:
        """Start capturing from ``open_source()`` (a factory, so the capture thread can reopen after a loss)."""
        if self.running:
            raise RuntimeError("pipeline already running")
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="mattecam-worker", daemon=True)
        self._worker.start()
        self._start_capture(open_source)

    def _start_capture(self, open_source: Callable[[], FrameSource]) -> None:
        self._capture = CaptureThread(open_source, self._slot, self._emit,
                                      on_open=self._source_opened, retry_interval_s=self._retry_interval_s)
        self._capture.start()

    def set_source(self, open_source: Callable[[], FrameSource], timeout: float = 1.0) -> None:
        """Switch to another source (camera, file, picture); the worker and sinks keep running."""
        if self._capture is not None:
            self._capture.stop()
            self._capture.join(timeout)
        self._slot.clear()
        self.source_info = None
        self._last_message = None
        self.call_soon(lambda: self.processor.smoother.reset())
        if self.running:
            self._start_capture(open_source)

    @property
    def source_open(self) -> bool:
        return self._capture is not None and self._capture.source_open

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop both threads, release the camera and close every sink, all within ``timeout`` seconds.

        The camera is released by the capture thread as soon as its current read returns. If the worker is
        still inside a slow model call when time runs out, the sinks (virtual camera, recorder) are closed
        from here; the worker then drops its frame and exits. Returns True if both threads ended in time.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._capture is not None:
            self._capture.stop()
            self._capture.join(max(0.0, deadline - time.monotonic() - 0.1))
        if self._worker is not None:
            self._worker.join(max(0.0, deadline - time.monotonic() - 0.1))
            if self._worker.is_alive():
                log.info("the model is mid-frame: closing the outputs without waiting for it")
                for sink in list(self._sinks):
                    self._close_sink(sink)
        stopped = not any(t is not None and t.is_alive() for t in (self._capture, self._worker))
        if not stopped:
            log.info("pipeline threads will exit after the current frame")
        return stopped

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end (after ``stop``): lets a process exit only once the model call is done."""
        for thread in (self._capture, self._worker):
            if thread is not None:
                thread.join(timeout)
        return not any(t is not None and t.is_alive() for t in (self._capture, self._worker))

    # --------------------------------------------------------------------------- changes between frames
    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the worker before its next frame (or right away when the pipeline is not running)."""
        if self.running:
            self._commands.put(fn)
        else:
            fn()

    def set_use_cra(self, enabled: bool) -> None:
        def apply() -> None:
            self.processor.engine.use_cra = enabled

        self.call_soon(apply)

    def set_target_fps(self, fps: float | None) -> None:
        """Adaptive quality aiming at ``fps`` frames per second; 0 or None = off (the engine's full quality)."""

        def apply() -> None:
            self.processor.target_fps = fps

        self.call_soon(apply)

    def set_background(self, background: Background) -> None:
        self.call_soon(lambda: self.processor.compositor.set_background(background))

    def set_smoothing(self, strength: float) -> None:
        def apply() -> None:
            self.processor.smoother = TemporalSmoother(strength)

        self.call_soon(apply)

    def set_max_model_side(self, side: int) -> None:
        def apply() -> None:
            self.processor.max_model_side = side

        self.call_soon(apply)

    def set_engine(self, engine: MatteEngine) -> None:
        def apply() -> None:
            self.processor.engine = engine
            self._done_times.clear()  # the old engine's speed says nothing about the new one

        self.call_soon(apply)

    def add_sink(self, sink: Sink) -> None:
        self.call_soon(lambda: self._sinks.append(sink))

    def remove_sink(self, sink: Sink) -> None:
        def apply() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)
            sink.close()

        self.call_soon(apply)

    # ---------------------------------------------------------------------------------------------- worker
    def _apply_commands(self) -> None:
        while True:
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception as exc:  # one bad change must not stop the worker
                log.warning("applying a change failed", exc_info=True)
                self._emit("error", "pipeline", f"could not apply a change: {exc}")

    def _work(self) -> None:
        done_times = self._done_times
        try:
            while not self._stop.is_set():
                self._apply_commands()
                item = self._slot.take(timeout=0.05)
                if item is None or self._stop.is_set():
                    continue
                try:
                    result = self.processor.process(item.frame, item.index)
                except MatteError as exc:
                    self._emit("error", "matte", str(exc))
                    result = self.processor.passthrough(item.frame, item.index, str(exc))
                except Exception as exc:  # the call must go on: show the frame and say what broke
                    log.exception("processing failed")
                    self._emit("error", "pipeline", f"processing failed: {exc}")
                    result = self.processor.passthrough(item.frame, item.index, str(exc))
                fps = self._measure_fps(done_times, time.monotonic())
                result.fps, result.dropped = fps, self._slot.dropped
                # Grab-to-composite latency, and the sinks' time of the previous frame (this one's is not done).
                result.timings_ms["latency"] = (time.monotonic() - item.timestamp) * 1e3
                result.timings_ms["sinks"] = self.stats.last_timings_ms.get("sinks", 0.0)
                clock = self.processor.clock
                t_sinks = clock()
                for sink in list(self._sinks):
                    try:
                        sink.send(result)
                    except SinkError as exc:
                        self._emit("error", f"sink:{sink.name}", str(exc))
                        self._drop_sink(sink)
                    except Exception as exc:
                        log.exception("sink %s failed", sink.name)
                        self._emit("error", f"sink:{sink.name}", f"{sink.name} failed: {exc}")
                        self._drop_sink(sink)
                timings = {**result.timings_ms, "sinks": (clock() - t_sinks) * 1e3}
                self.processor.extra_ms = timings["sinks"]  # adaptive quality counts the outputs' time too
                self.stats = PipelineStats(self.stats.frames + 1, fps, self._slot.dropped, timings, result.quality)
        finally:
            for sink in list(self._sinks):
                self._close_sink(sink)

    @staticmethod
    def _measure_fps(done_times: deque[float], now: float, window_s: float = 2.0) -> float:
        """Frames finished per second over the last ``window_s`` seconds (at least the last two frames)."""
        done_times.append(now)
        while len(done_times) > 2 and now - done_times[0] > window_s:
            done_times.popleft()
        if len(done_times) < 2:
            return 0.0
        return (len(done_times) - 1) / max(done_times[-1] - done_times[0], 1e-6)

    @staticmethod
    def _close_sink(sink: Sink) -> None:
        try:
            sink.close()
        except Exception:
            log.exception("closing %s failed", sink.name)

    def _drop_sink(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        self._close_sink(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)
