"""Adaptive quality: hold a target frame rate by trading refinement budget and coarse resolution for time.

A weak laptop should still get a fluid picture, so the controller watches measured frame times and walks
a ladder of quality levels, best first:

1. full coarse scale, the region budget shrinking from ``max_budget`` to ``min_budget`` by ``budget_factor``
   (refining fewer 8x8 regions costs a little edge detail and little time);
2. then, at ``min_budget``, the coarse input scale dropping by ``scale_step`` down to ``min_scale``
   (the Swin pass dominates the cost, so this is what saves the most time).

It steps down when the smoothed frame time is above the target by more than ``tolerance``, and back up only
with ``headroom`` to spare, after a cooldown; an upgrade that has to be undone at once doubles the wait before
the next one (so it does not oscillate around a level that is just too slow).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptiveConfig:
    """Target and bounds of the adaptive quality controller."""

    target_fps: float = 30.0
    min_scale: float = 0.5
    max_scale: float = 1.0
    scale_step: float = 0.125
    min_budget: int = 64
    max_budget: int = 2048
    budget_factor: float = 0.7
    tolerance: float = 0.10
    headroom: float = 0.25
    smoothing: float = 0.3
    cooldown_frames: int = 5
    max_backoff: int = 16
    min_side: int = 224

    def __post_init__(self) -> None:
        problems = []
        if not self.target_fps > 0:
            problems.append("target_fps must be > 0")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            problems.append("need 0 < min_scale <= max_scale <= 1")
        if not self.scale_step > 0:
            problems.append("scale_step must be > 0")
        if not 1 <= self.min_budget <= self.max_budget:
            problems.append("need 1 <= min_budget <= max_budget")
        if not 0 < self.budget_factor < 1:
            problems.append("budget_factor must be in (0, 1)")
        if not (self.tolerance >= 0 and 0 <= self.headroom < 1):
            problems.append("tolerance must be >= 0 and headroom in [0, 1)")
        if not 0 < self.smoothing <= 1:
            problems.append("smoothing must be in (0, 1]")
        if self.cooldown_frames < 1 or self.max_backoff < 1:
            problems.append("cooldown_frames and max_backoff must be >= 1")
        if problems:
            raise ValueError("invalid AdaptiveConfig: " + "; ".join(problems))

    @property
    def target_ms(self) -> float:
        return 1000.0 / self.target_fps


@dataclass(frozen=True)
class QualitySetting:
    """What the next frame should use: refine at most ``region_budget`` regions, run at ``coarse_scale``."""

    region_budget: int
    coarse_scale: float


def quality_ladder(cfg: AdaptiveConfig) -> tuple[QualitySetting, ...]:
    """The levels the controller walks, best first (see the module docstring for the order)."""
    budgets = [cfg.max_budget]
    while budgets[-1] > cfg.min_budget:
        budgets.append(max(cfg.min_budget, int(budgets[-1] * cfg.budget_factor)))
    levels = [QualitySetting(b, cfg.max_scale) for b in budgets]
    scales: list[float] = []
    s = cfg.max_scale - cfg.scale_step
    while s > cfg.min_scale + 1e-9:
        scales.append(round(s, 6))
        s -= cfg.scale_step
    if cfg.min_scale < cfg.max_scale:
        scales.append(cfg.min_scale)
    levels += [QualitySetting(cfg.min_budget, s) for s in scales]
    return tuple(levels)


class AdaptiveController:
    """Fed one measured frame time per frame, says which :class:`QualitySetting` the next frame uses."""

    def __init__(self, config: AdaptiveConfig = AdaptiveConfig()):
        self.config = config
        self.levels = quality_ladder(config)
        self.level = 0
        self._ema: float | None = None
        self._since_change = 0
        self._upgrade_wait = config.cooldown_frames
        self._last_move: Literal["up", "down"] | None = None

    @property
    def current(self) -> QualitySetting:
        return self.levels[self.level]

    @property
    def smoothed_ms(self) -> float | None:
        return self._ema

    def update(self, frame_ms: float) -> QualitySetting:
        """Record how long the last frame took (ms) and return the setting for the next one."""
        if not (frame_ms >= 0 and math.isfinite(frame_ms)):
            raise ValueError(f"frame time must be a finite number of ms >= 0, got {frame_ms}")
        cfg = self.config
        a = cfg.smoothing
        self._ema = frame_ms if self._ema is None else a * frame_ms + (1 - a) * self._ema
        self._since_change += 1
        if self._since_change < cfg.cooldown_frames:
            return self.current
        ratio = self._ema / cfg.target_ms
        if ratio > 1 + cfg.tolerance and self.level < len(self.levels) - 1:
            steps = 1 + int(ratio > 1.5) + int(ratio > 2.5)  # far too slow: do not crawl down one rung a second
            if self._last_move == "up" and self._since_change <= 2 * cfg.cooldown_frames:
                self._upgrade_wait = min(self._upgrade_wait * 2, cfg.cooldown_frames * cfg.max_backoff)
            self._move(min(len(self.levels) - 1, self.level + steps), "down")
        elif ratio < 1 - cfg.headroom and self.level > 0 and self._since_change >= self._upgrade_wait:
            self._move(self.level - 1, "up")
        return self.current

    def _move(self, level: int, direction: Literal["up", "down"]) -> None:
        log.debug("adaptive quality %s: level %d -> %d (%s), smoothed %.1f ms for target %.1f ms",
                  direction, self.level, level, self.levels[level], self._ema or 0.0, self.config.target_ms)
        self.level = level
        self._ema = None  # the old level's times say nothing about the new one
        self._since_change = 0
        self._last_move = direction


class _Engine(Protocol):
    region_budget: int | None

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray: ...

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> Any: ...


class AdaptiveMatter:
    """Wraps an engine: applies the controller's setting to each frame and feeds back the time it took.

    The coarse input scale is applied as downscale-then-matte-then-upscale of the alpha (the engine mattes
    the smaller frame, region budget included), so it works with any engine exposing ``matte`` /
    ``matte_detailed`` and a settable ``region_budget``. An engine whose budget cannot change (an ONNX export
    with a static budget raises ``ValueError``) keeps its budget and only the scale adapts.

    After each frame ``last_quality`` says what that frame used (the scale after the ``min_side`` clamp),
    ``last_input_size`` the (width, height) the model itself saw (the trimap and regions of a detailed result
    refer to it; an inner engine's own ``last_input_size`` wins, so wrappers nest), and ``last_ms`` how long
    the engine call took. ``overhead_ms`` is per-frame time spent outside this wrapper (smoothing, compositing,
    output), set by the caller and added to the measured time, so the target holds for the whole frame.
    """

    def __init__(self, engine: _Engine, config: AdaptiveConfig = AdaptiveConfig(),
                 clock: Callable[[], float] = time.perf_counter):
        self.engine = engine
        self._clock = clock  # seconds; tests pass a fake one
        self._original_budget = getattr(engine, "region_budget", None)
        pinned = _pinned_budget(engine, config.max_budget)
        self.budget_adjustable = pinned is None
        if pinned is not None:
            log.info("the engine's region budget is fixed at %s: adaptive quality adjusts only the scale", pinned)
            config = replace(config, min_budget=pinned, max_budget=pinned)
        self.controller = AdaptiveController(config)
        self.overhead_ms = 0.0
        self.last_ms = 0.0
        self.last_quality: QualitySetting | None = None
        self.last_input_size: tuple[int, int] | None = None

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
        """(H, W, 3) uint8 frame -> (H, W) float32 alpha, at the quality the controller currently allows."""
        return self._run(frame, channels, detailed=False)

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> Any:
        """The engine's detailed result for ``frame`` at the current quality, its ``alpha`` at the frame's size.

        The other fields (trimap, regions, coarse alpha) stay at the size the model saw: ``last_input_size``.
        """
        return self._run(frame, channels, detailed=True)

    def _run(self, frame: np.ndarray, channels: str, detailed: bool) -> Any:
        import cv2

        setting = self.controller.current
        t0 = self._clock()
        h, w = frame.shape[:2]
        scale = effective_scale(setting.coarse_scale, h, w, self.controller.config.min_side)
        if self.budget_adjustable:
            self.engine.region_budget = setting.region_budget
        size = (w, h)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        result = self.engine.matte_detailed(frame, channels) if detailed else self.engine.matte(frame, channels)
        alpha = result.alpha if detailed else result
        if alpha.shape[:2] != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        if detailed:
            result.alpha = alpha
        self.last_quality = QualitySetting(setting.region_budget, scale)
        self.last_input_size = getattr(self.engine, "last_input_size", None) or size
        self.last_ms = (self._clock() - t0) * 1000.0
        self.controller.update(self.last_ms + self.overhead_ms)
        return result if detailed else alpha

    def release(self) -> None:
        """Give the engine back its own region budget (adaptive quality off: full quality again)."""
        if self.budget_adjustable:
            self.engine.region_budget = self._original_budget


def _pinned_budget(engine: _Engine, probe: int) -> int | None:
    """None when ``engine.region_budget`` can be changed, else the budget it is fixed at."""
    before = getattr(engine, "region_budget", None)
    try:
        engine.region_budget = probe
    except ValueError:
        return before if isinstance(before, int) and before >= 1 else probe
    engine.region_budget = before
    return None


def effective_scale(scale: float, height: int, width: int, min_side: int) -> float:
    """``scale``, raised if needed so the short side stays >= ``min_side`` (never above 1)."""
    short = min(height, width)
    return min(1.0, max(scale, min_side / short)) if short > 0 else 1.0
