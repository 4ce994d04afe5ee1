"""The live pipeline: composited output, newest-frame capture, changes between frames, faults, shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from app_doubles import FakeEngine, wait_until

from app.backgrounds import ColorBackground, ImageBackground
from app.capture import CaptureThread, LatestFrame
from app.compositor import Compositor
from app.frames import CapturedFrame, FrameResult
from app.pipeline import Pipeline
from app.processing import FrameProcessor, to_bgr8
from app.sinks import CallbackSink, SinkError
from app.sources import SourceError, SourceInfo, SourceLost, VideoFileSource


class Collector:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: FrameResult) -> None:
        with self.lock:
            self.results.append(result)


class CountingSource:
    """A live source producing numbered frames at ``fps`` (frame value = its index mod 256)."""

    def __init__(self, fps: float = 200.0, size=(64, 48), fail_after: int | None = None) -> None:
        self.fps, self.size, self.fail_after = fps, size, fail_after
        self.count = 0
        self.closed = False

    def open(self) -> SourceInfo:
        return SourceInfo("counting", self.size[0], self.size[1], self.fps, live=True)

    def read(self) -> np.ndarray:
        time.sleep(1.0 / self.fps)
        self.count += 1
        if self.fail_after is not None and self.count > self.fail_after:
            raise SourceLost("counting source unplugged")
        return np.full((self.size[1], self.size[0], 3), self.count % 256, np.uint8)

    def close(self) -> None:
        self.closed = True


def make_pipeline(engine, background=None, events=None):
    collector = Collector()
    compositor = Compositor(background or ColorBackground((0, 255, 0)))
    pipeline = Pipeline(engine, FrameProcessor(engine, compositor), [CallbackSink("test", collector)],
                        on_event=(events.append if events is not None else None))
    return pipeline, collector


def test_pipeline_turns_a_video_into_composites_with_the_background_where_alpha_is_zero(video_file, background_file):
    engine = FakeEngine()
    background = ImageBackground.from_file(background_file)
    pipeline, collector = make_pipeline(engine, background)
    pipeline.start(lambda: VideoFileSource(video_file))
    try:
        assert wait_until(lambda: len(collector.results) >= 5)
    finally:
        assert pipeline.stop()
    expected_bg = background.render(np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160), np.float32))
    for result in collector.results:
        assert result.composite.shape == (120, 160, 3)
        zero = result.alpha == 0
        one = result.alpha == 1
        assert zero.sum() > 1000 and one.sum() > 1000
        assert np.array_equal(result.composite[zero], expected_bg[zero])
        assert np.array_equal(result.composite[one], result.frame[one])
        assert {"matte", "composite", "total", "latency"} <= set(result.timings_ms)


def test_composite_uses_the_alpha_of_the_same_frame():
    """The engine's alpha depends on the frame's content; every composite must match its own frame's alpha."""

    class ContentEngine(FakeEngine):
        def matte_detailed(self, frame, channels="rgb"):
            out = super().matte_detailed(frame, channels)
            out.alpha = np.full(frame.shape[:2], frame[0, 0, 0] / 255.0, np.float32)  # alpha encodes the frame
            return out

    engine = ContentEngine()
    pipeline, collector = make_pipeline(engine, ColorBackground((0, 0, 0)))
    pipeline.start(lambda: CountingSource(fps=100))
    try:
        assert wait_until(lambda: len(collector.results) >= 10)
    finally:
        pipeline.stop()
    for result in collector.results:
        assert np.allclose(result.alpha, result.frame[0, 0, 0] / 255.0)


def test_capture_drops_frames_instead_of_queueing_when_processing_is_slow():
    engine = FakeEngine(delay_s=0.1)  # 10 fps model, 200 fps camera
    pipeline, collector = make_pipeline(engine)
    source = CountingSource(fps=200)
    pipeline.start(lambda: source)
    try:
        assert wait_until(lambda: len(collector.results) >= 4)
    finally:
        pipeline.stop()
    processed = [r.index for r in collector.results]
    # Far fewer frames processed than captured, and the frames that were processed skip ahead:
    assert source.count > 3 * len(processed)
    assert max(np.diff(processed)) > 5
    assert pipeline.dropped_frames > 0
    # Latency stays bounded (one processing time + one capture interval), it does not grow with backlog.
    latencies = [r.timings_ms["latency"] for r in collector.results]
    assert max(latencies) < 400


def test_latest_frame_slot_keeps_only_the_newest():
    slot = LatestFrame()
    for i in range(5):
        slot.put(CapturedFrame(np.zeros((1, 1, 3), np.uint8), i, 0.0))
    item = slot.take(timeout=0.01)
    assert item.index == 4
    assert slot.take(timeout=0.01) is None
    assert slot.dropped == 4


def test_toggling_cra_reaches_the_engine_on_the_next_frames():
    engine = FakeEngine()
    pipeline, _collector = make_pipeline(engine)
    pipeline.start(lambda: CountingSource(fps=100))
    try:
        assert wait_until(lambda: engine.calls >= 2)
        pipeline.set_use_cra(False)
        calls_at_toggle = engine.calls
        assert wait_until(lambda: engine.calls >= calls_at_toggle + 3)
        assert engine.use_cra is False
        assert engine.cra_seen[-1] is False
        # Once off, it stays off: no frame after the switch ran with CRA.
        first_off = engine.cra_seen.index(False)
        assert all(v is False for v in engine.cra_seen[first_off:])
    finally:
        pipeline.stop()


def test_changing_the_background_changes_the_composite():
    engine = FakeEngine()
    pipeline, collector = make_pipeline(engine, ColorBackground((0, 255, 0)))
    pipeline.start(lambda: CountingSource(fps=100))
    try:
        assert wait_until(lambda: len(collector.results) >= 2)
        pipeline.set_background(ColorBackground((255, 0, 0)))
        n = len(collector.results)
        assert wait_until(lambda: len(collector.results) >= n + 3)
    finally:
        pipeline.stop()
    first, last = collector.results[0], collector.results[-1]
    assert tuple(first.composite[0, 0]) == (0, 255, 0)
    assert tuple(last.composite[0, 0]) == (255, 0, 0)


def test_camera_unplugged_mid_stream_reconnects_when_it_returns():
    events = []
    engine = FakeEngine()
    pipeline, collector = make_pipeline(engine, events=events)
    opened = []

    def open_source():
        # First camera dies after 5 frames; the first reopen fails (still unplugged); the next one works.
        opened.append(1)
        if len(opened) == 2:
            raise SourceError("No camera found", reason="no_camera")
        return CountingSource(fps=100, fail_after=5 if len(opened) == 1 else None)

    pipeline = Pipeline(engine, pipeline.processor, list(pipeline.sinks), on_event=events.append,
                        retry_interval_s=0.05)
    pipeline.start(open_source)
    try:
        assert wait_until(lambda: len(opened) >= 3 and len(collector.results) >= 8)
    finally:
        pipeline.stop()
    messages = [e.message for e in events]
    assert any("unplugged" in m for m in messages)
    assert any("source is back" in m for m in messages)


def test_engine_failure_passes_the_frame_through_and_keeps_running():
    class FlakyEngine(FakeEngine):
        def matte_detailed(self, frame, channels="rgb"):
            if self.calls % 2 == 0:
                self.calls += 1
                raise RuntimeError("CUDA error: out of memory")
            return super().matte_detailed(frame, channels)

    events = []
    pipeline, collector = make_pipeline(FlakyEngine(), events=events)
    pipeline.start(lambda: CountingSource(fps=100))
    try:
        assert wait_until(lambda: len(collector.results) >= 6)
    finally:
        pipeline.stop()
    warned = [r for r in collector.results if r.warning]
    assert warned and all(np.array_equal(r.composite, r.frame) for r in warned)
    assert any(not r.warning for r in collector.results)
    assert any(e.topic == "matte" and "out of memory" in e.message for e in events)


def test_failing_sink_is_dropped_and_the_others_keep_receiving():
    class BrokenSink:
        name = "broken"
        closed = False

        def send(self, result):
            raise SinkError("device vanished")

        def close(self):
            BrokenSink.closed = True

    events = []
    pipeline, collector = make_pipeline(FakeEngine(), events=events)
    pipeline.add_sink(BrokenSink())
    pipeline.start(lambda: CountingSource(fps=100))
    try:
        assert wait_until(lambda: len(collector.results) >= 5)
    finally:
        pipeline.stop()
    assert BrokenSink.closed
    assert [s.name for s in pipeline.sinks] == ["test"]
    assert any(e.topic == "sink:broken" for e in events)


def test_stop_ends_both_threads_and_closes_source_and_sinks_within_a_second():
    class ClosingSink(CallbackSink):
        closed = False

        def close(self):
            ClosingSink.closed = True

    engine = FakeEngine(delay_s=0.2)
    source = CountingSource(fps=30)
    collector = Collector()
    pipeline = Pipeline(engine, FrameProcessor(engine, Compositor()), [ClosingSink("c", collector)])
    pipeline.start(lambda: source)
    assert wait_until(lambda: len(collector.results) >= 1)
    t0 = time.monotonic()
    assert pipeline.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert source.closed and ClosingSink.closed
    assert not any(t.name.startswith("mattecam-") for t in threading.enumerate())


def test_no_source_reports_once_and_keeps_retrying():
    events = []
    attempts = []

    def open_source():
        attempts.append(1)
        raise SourceError("No camera found (/dev/video0 does not exist)", reason="no_camera")

    slot = LatestFrame()
    thread = CaptureThread(open_source, slot, lambda lv, tp, msg, reason: events.append((msg, reason)),
                           retry_interval_s=0.02)
    thread.start()
    assert wait_until(lambda: len(attempts) >= 4)
    thread.stop()
    thread.join(1)
    assert not thread.is_alive()
    assert events == [("No camera found (/dev/video0 does not exist)", "no_camera")]  # once, not every retry


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((7, 5, 3), np.uint8),
        np.zeros((33, 47), np.uint8),  # grey
        np.zeros((50, 70, 4), np.uint8),  # BGRA
        np.zeros((40, 60, 3), np.uint16),  # 16-bit
        np.zeros((40, 60, 1), np.uint8),
        np.zeros((3000, 100, 3), np.uint8),  # longer than max_model_side
    ],
    ids=["1x1", "7x5", "grey", "bgra", "16bit", "1ch", "huge"],
)
def test_frames_the_model_cannot_take_are_fixed_not_fatal(frame):
    engine = FakeEngine()
    processor = FrameProcessor(engine, Compositor(ColorBackground((1, 2, 3))), max_model_side=1024)
    result = processor.process(frame)
    h, w = frame.shape[:2]
    assert result.composite.shape == (h, w, 3) and result.alpha.shape == (h, w)
    seen_h, seen_w = engine.shapes[-1][:2]
    assert min(seen_h, seen_w) >= 64 and max(seen_h, seen_w) <= 1024


def test_engine_that_rejects_a_size_gets_a_padded_frame():
    class Multiple32Engine(FakeEngine):
        def matte_detailed(self, frame, channels="rgb"):
            if frame.shape[0] % 32 or frame.shape[1] % 32:
                raise ValueError("size must be a multiple of 32")
            return super().matte_detailed(frame, channels)

    engine = Multiple32Engine()
    result = FrameProcessor(engine, Compositor(ColorBackground((0, 0, 0)))).process(np.zeros((100, 130, 3), np.uint8))
    assert result.alpha.shape == (100, 130)
    assert engine.shapes[-1][:2] == (128, 160)


def test_to_bgr8_rejects_nonsense_shapes():
    with pytest.raises(ValueError, match="shape"):
        to_bgr8(np.zeros((4, 4, 2), np.uint8))


def test_stop_releases_outputs_in_time_even_when_the_model_is_mid_frame(fake_vcam):
    from app.sinks import VirtualCameraSink

    engine = FakeEngine(delay_s=2.0)  # a 4K frame on a slow CPU
    source = CountingSource(fps=30)
    sink = VirtualCameraSink(backend="fake")
    pipeline = Pipeline(engine, FrameProcessor(engine, Compositor()), [sink])
    pipeline.start(lambda: source)
    assert wait_until(lambda: engine.calls >= 1, timeout=10)  # frame 1 done, the worker is inside frame 2
    assert wait_until(lambda: len(fake_vcam.frames) == 1)
    t0 = time.monotonic()
    pipeline.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.05
    assert source.closed  # camera released
    assert not sink.is_open and fake_vcam.closed == 1  # virtual camera released
    assert pipeline.join(5.0)  # the worker ends once its model call returns ...
    assert len(fake_vcam.frames) == 1  # ... and sends nothing after the close
