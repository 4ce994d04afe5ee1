"""Adaptive quality in the app: a slow engine gets a lower budget, then a lower scale, and the alpha keeps the
frame's size; off restores full quality. Frame times come from a fake clock: no test here depends on speed."""

from __future__ import annotations

import threading

import numpy as np
from app_doubles import FakeClock, FakeEngine, wait_until

from app.backgrounds import ColorBackground
from app.compositor import Compositor
from app.pipeline import Pipeline
from app.processing import FrameProcessor
from app.sinks import CallbackSink
from app.sources import SourceInfo

W, H = 640, 480  # short side 480: the default AdaptiveConfig may halve it (min_side 224)


def slow_processor(cost_ms: float = 200.0, target_fps: float = 30, engine_cls=FakeEngine):
    clock = FakeClock()
    engine = engine_cls(clock=clock, cost_ms=cost_ms)
    processor = FrameProcessor(engine, Compositor(ColorBackground((0, 0, 0))), target_fps=target_fps, clock=clock)
    return processor, engine


def frame(value: int = 90) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def test_slow_engine_lowers_the_budget_first_then_the_scale_and_alpha_keeps_the_frame_size():
    processor, engine = slow_processor()
    results = [processor.process(frame(), i) for i in range(40)]
    assert engine.budgets_seen[0] == processor.adaptive.controller.config.max_budget
    assert engine.shapes[0][:2] == (H, W)
    budgets = engine.budgets_seen
    assert all(b2 <= b1 for b1, b2 in zip(budgets, budgets[1:]))  # only ever lower for a too-slow engine
    first_small = next(i for i, s in enumerate(engine.shapes) if s[:2] != (H, W))
    assert budgets[first_small] == processor.adaptive.controller.config.min_budget  # budget gave out first
    last = results[-1]
    assert last.quality.coarse_scale == 0.5 and engine.shapes[-1][:2] == (H // 2, W // 2)
    for r in results:
        assert r.alpha.shape == (H, W) and r.composite.shape == (H, W, 3)
        scale = r.quality.coarse_scale
        assert r.model_size == (round(W * scale), round(H * scale))  # the size the trimap refers to
        assert r.trimap.shape == (-(-r.model_size[1] // 8), -(-r.model_size[0] // 8))
    # Still the frame's own matte: the ellipse, scaled back (centre foreground, corner background).
    assert last.alpha[H // 2, W // 2] == 1.0 and last.alpha[0, 0] == 0.0


def test_turning_adaptive_quality_off_restores_full_quality():
    processor, engine = slow_processor()
    for i in range(30):
        processor.process(frame(), i)
    assert engine.region_budget is not None and engine.shapes[-1][:2] != (H, W)
    processor.target_fps = 0
    assert processor.adaptive is None
    assert engine.region_budget is None  # the engine's own "refine every uncertain region"
    result = processor.process(frame(), 99)
    assert engine.budgets_seen[-1] is None and engine.shapes[-1][:2] == (H, W)
    assert result.quality is None and result.model_size == (W, H)


def test_a_new_engine_starts_again_at_full_quality_and_cra_still_reaches_it():
    processor, engine = slow_processor()
    for i in range(30):
        processor.process(frame(), i)
    fresh = FakeEngine(clock=engine.clock, cost_ms=1.0)
    processor.engine = fresh
    assert engine.region_budget is None  # the old engine got its own budget back
    processor.engine.use_cra = False
    result = processor.process(frame(), 31)
    assert result.quality.coarse_scale == 1.0
    assert fresh.budgets_seen[-1] == processor.adaptive.controller.config.max_budget
    assert fresh.cra_seen[-1] is False and fresh.shapes[-1][:2] == (H, W)


def test_time_outside_the_engine_counts_towards_the_target():
    """A 25 ms engine holds 30 FPS (33 ms) on its own, not with 20 ms of output time per frame on top."""
    processor, engine = slow_processor(cost_ms=25.0)
    for i in range(20):
        processor.process(frame(), i)
    assert processor.adaptive.controller.level == 0
    processor.extra_ms = 20.0
    for i in range(10):
        processor.process(frame(), i)
    assert processor.adaptive.controller.level > 0


class LiveSource:
    """A live 640x480 source; every frame is one flat grey whose value is the frame's number."""

    def __init__(self) -> None:
        self.count = 0

    def open(self) -> SourceInfo:
        return SourceInfo("live", W, H, 100.0, live=True)

    def read(self) -> np.ndarray:
        threading.Event().wait(0.005)
        self.count += 1
        return frame(self.count % 256)

    def close(self) -> None:
        pass


class ContentEngine(FakeEngine):
    """Alpha encodes the frame it was given (a flat alpha survives the down- and upscaling exactly)."""

    def matte_detailed(self, frame, channels="rgb"):
        out = super().matte_detailed(frame, channels)
        out.alpha = np.full(frame.shape[:2], frame[0, 0, 0] / 255.0, np.float32)
        return out


def test_pipeline_applies_the_target_between_frames_and_keeps_each_frames_own_alpha():
    processor, engine = slow_processor(engine_cls=ContentEngine)
    results = []
    lock = threading.Lock()

    def collect(result):
        with lock:
            results.append(result)

    pipeline = Pipeline(engine, processor, [CallbackSink("test", collect)])
    pipeline.start(LiveSource)
    try:
        assert wait_until(lambda: bool(results) and results[-1].quality.coarse_scale < 1.0, timeout=30)
        assert pipeline.stats.quality is not None
        pipeline.set_use_cra(False)
        pipeline.set_target_fps(0)
        n = len(results)
        assert wait_until(lambda: len(results) >= n + 3, timeout=30)
    finally:
        assert pipeline.stop()
    assert engine.region_budget is None and engine.shapes[-1][:2] == (H, W)
    assert results[-1].quality is None and pipeline.stats.quality is None
    assert engine.cra_seen[-1] is False
    for r in results:
        assert r.alpha.shape == (H, W)
        assert np.allclose(r.alpha, r.frame[0, 0, 0] / 255.0)  # the alpha of this very frame
