"""Adaptive quality: slow frames lower the budget then the scale, fast frames raise them back, bounds hold."""

from __future__ import annotations

import numpy as np
import pytest

from matting_core.adaptive import (
    AdaptiveConfig,
    AdaptiveController,
    AdaptiveMatter,
    QualitySetting,
    effective_scale,
    quality_ladder,
)

CFG = AdaptiveConfig(target_fps=25.0, min_scale=0.5, max_scale=1.0, scale_step=0.25, min_budget=100,
                     max_budget=400, budget_factor=0.5, cooldown_frames=3)


def feed(ctrl: AdaptiveController, ms: float, frames: int) -> list[QualitySetting]:
    return [ctrl.update(ms) for _ in range(frames)]


def test_ladder_lowers_budget_first_then_scale():
    assert quality_ladder(CFG) == (
        QualitySetting(400, 1.0), QualitySetting(200, 1.0), QualitySetting(100, 1.0),
        QualitySetting(100, 0.75), QualitySetting(100, 0.5))


def test_ladder_ends_exactly_at_min_scale_when_steps_do_not_divide():
    cfg = AdaptiveConfig(min_scale=0.4, scale_step=0.25, min_budget=10, max_budget=10)
    assert [s.coarse_scale for s in quality_ladder(cfg)] == [1.0, 0.75, 0.5, 0.4]


def test_starts_at_best_quality():
    assert AdaptiveController(CFG).current == QualitySetting(400, 1.0)


def test_slow_frames_lower_budget_before_scale():
    ctrl = AdaptiveController(CFG)
    seen = feed(ctrl, 50.0, 3)  # target 40 ms; 50 ms is 1.25x: one rung per cooldown
    assert seen[-1] == QualitySetting(200, 1.0)
    seen = feed(ctrl, 50.0, 3)
    assert seen[-1] == QualitySetting(100, 1.0)
    seen = feed(ctrl, 50.0, 3)
    assert seen[-1] == QualitySetting(100, 0.75)


def test_waits_for_cooldown_before_changing():
    ctrl = AdaptiveController(CFG)
    assert feed(ctrl, 80.0, 2) == [QualitySetting(400, 1.0)] * 2


def test_far_too_slow_skips_rungs():
    ctrl = AdaptiveController(CFG)
    feed(ctrl, 40.0 * 3, 3)  # 3x the target: three rungs at once
    assert ctrl.level == 3


def test_never_goes_below_the_lightest_level():
    ctrl = AdaptiveController(CFG)
    for s in feed(ctrl, 1000.0, 60):
        assert s.region_budget >= CFG.min_budget and s.coarse_scale >= CFG.min_scale
    assert ctrl.current == QualitySetting(100, 0.5)


def test_fast_frames_raise_quality_back_and_stop_at_the_top():
    ctrl = AdaptiveController(CFG)
    feed(ctrl, 1000.0, 30)
    seen = feed(ctrl, 10.0, 200)
    assert seen[-1] == QualitySetting(400, 1.0)
    for s in seen:
        assert s.region_budget <= CFG.max_budget and s.coarse_scale <= CFG.max_scale
    # on the way up the scale comes back before the budget (reverse of the way down)
    firsts = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert [s.coarse_scale for s in firsts[:3]] == [0.5, 0.75, 1.0]


def test_within_the_band_nothing_changes():
    ctrl = AdaptiveController(CFG)
    feed(ctrl, 1000.0, 3)
    level = ctrl.level
    feed(ctrl, 38.0, 50)  # under target but without 25 % headroom: hold
    assert ctrl.level == level


def test_an_upgrade_that_is_undone_at_once_doubles_the_wait():
    ctrl = AdaptiveController(CFG)
    feed(ctrl, 50.0, 3)  # level 1
    feed(ctrl, 10.0, 3)  # up to level 0
    assert ctrl.level == 0
    feed(ctrl, 50.0, 3)  # immediately too slow again: back down, next upgrade waits twice as long
    assert ctrl.level == 1
    assert ctrl._upgrade_wait == 2 * CFG.cooldown_frames
    seen = feed(ctrl, 10.0, 5)
    assert all(s == QualitySetting(200, 1.0) for s in seen)
    assert feed(ctrl, 10.0, 1)[-1] == QualitySetting(400, 1.0)


def test_bad_config_and_bad_times_are_clear_errors():
    with pytest.raises(ValueError, match="min_scale"):
        AdaptiveConfig(min_scale=0.0)
    with pytest.raises(ValueError, match="min_budget"):
        AdaptiveConfig(min_budget=500, max_budget=100)
    with pytest.raises(ValueError, match="frame time"):
        AdaptiveController(CFG).update(float("nan"))


def test_effective_scale_keeps_the_short_side_usable():
    assert effective_scale(0.25, 720, 1280, 224) == pytest.approx(224 / 720)
    assert effective_scale(0.5, 2160, 3840, 224) == 0.5
    assert effective_scale(0.5, 200, 300, 224) == 1.0


class FakeEngine:
    """Records what it was asked to matte; its time is whatever the test clock says."""

    def __init__(self):
        self.region_budget = None
        self.calls: list[tuple[tuple[int, int], int | None]] = []

    def matte(self, frame, channels="rgb"):
        self.calls.append((frame.shape[:2], self.region_budget))
        return np.full(frame.shape[:2], 0.5, np.float32)


def test_matter_applies_budget_and_scale_and_returns_full_size_alpha():
    engine = FakeEngine()
    ticks = iter(np.arange(0, 10, 0.2))  # every frame "takes" 200 ms: far too slow for 25 FPS
    matter = AdaptiveMatter(engine, CFG, clock=lambda: float(next(ticks)))
    frame = np.zeros((720, 1280, 3), np.uint8)
    for _ in range(7):
        alpha = matter.matte(frame)
        assert alpha.shape == (720, 1280)
    assert engine.calls[0] == ((720, 1280), 400)
    assert engine.calls[3] == ((540, 960), 100)  # 5x too slow: three rungs at once after the cooldown
    assert engine.calls[-1] == ((360, 640), 100)


class DetailedEngine(FakeEngine):
    """Also has ``matte_detailed``: a result object whose trimap is at 1/8 of the frame it was given."""

    def matte_detailed(self, frame, channels="rgb"):
        from types import SimpleNamespace

        alpha = self.matte(frame, channels)
        h, w = frame.shape[:2]
        return SimpleNamespace(alpha=alpha, trimap=np.ones((-(-h // 8), -(-w // 8)), np.uint8),
                               regions=np.zeros((3, 2), np.int32))


class StaticBudgetEngine(DetailedEngine):
    """Like an ONNX export with a static budget: any other budget is a ValueError."""

    def __init__(self):
        self._budget = 300
        self.calls = []

    @property
    def region_budget(self):
        return self._budget

    @region_budget.setter
    def region_budget(self, value):
        if value != 300:
            raise ValueError("static region budget of 300")
        self._budget = value


def slow_clock(step_s=0.2):
    ticks = iter(np.arange(0, 100, step_s))
    return lambda: float(next(ticks))


def test_matte_detailed_returns_frame_sized_alpha_and_model_sized_details():
    engine = DetailedEngine()
    matter = AdaptiveMatter(engine, CFG, clock=slow_clock())
    frame = np.zeros((720, 1280, 3), np.uint8)
    first = matter.matte_detailed(frame, "bgr")
    assert matter.last_quality == QualitySetting(400, 1.0) and matter.last_input_size == (1280, 720)
    assert matter.last_ms == pytest.approx(200.0)
    for _ in range(6):
        result = matter.matte_detailed(frame, "bgr")
    assert first.alpha.shape == result.alpha.shape == (720, 1280)
    assert matter.last_quality == QualitySetting(100, 0.5)
    assert matter.last_input_size == (640, 360)
    assert result.trimap.shape == (45, 80)  # at the size the model saw, not the frame's
    assert engine.calls[-1] == ((360, 640), 100)


def test_release_gives_the_engine_back_its_own_budget():
    engine = DetailedEngine()
    matter = AdaptiveMatter(engine, CFG, clock=slow_clock())
    assert engine.region_budget is None  # creating the wrapper changes nothing yet
    matter.matte_detailed(np.zeros((480, 640, 3), np.uint8))
    assert engine.region_budget == 400
    matter.release()
    assert engine.region_budget is None


def test_a_static_budget_engine_adapts_only_the_scale():
    engine = StaticBudgetEngine()
    matter = AdaptiveMatter(engine, CFG, clock=slow_clock())
    assert not matter.budget_adjustable
    assert {s.region_budget for s in matter.controller.levels} == {300}
    frame = np.zeros((720, 1280, 3), np.uint8)
    for _ in range(7):
        matter.matte_detailed(frame)
    assert matter.last_quality == QualitySetting(300, 0.5)
    assert engine.calls[-1] == ((360, 640), 300)


def test_overhead_outside_the_engine_counts_towards_the_target():
    engine = DetailedEngine()
    matter = AdaptiveMatter(engine, CFG, clock=slow_clock(0.03))  # 30 ms engine: fine for 25 FPS (40 ms) ...
    frame = np.zeros((480, 640, 3), np.uint8)
    for _ in range(10):
        matter.matte_detailed(frame)
    assert matter.controller.level == 0
    matter.overhead_ms = 20.0  # ... but not with 20 ms of compositing on top
    for _ in range(5):
        matter.matte_detailed(frame)
    assert matter.controller.level == 1


def test_an_inner_wrapper_reports_the_size_the_model_saw():
    engine = DetailedEngine()
    engine.last_input_size = (64, 48)  # e.g. an adapter that resizes every frame to an export size
    matter = AdaptiveMatter(engine, CFG, clock=slow_clock())
    matter.matte_detailed(np.zeros((480, 640, 3), np.uint8))
    assert matter.last_input_size == (64, 48)
