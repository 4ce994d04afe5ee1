"""One frame through the matting engine, the temporal smoother and the compositor.

Used by the live pipeline's worker thread and, frame by frame without dropping, by ``mattecam render``.
The alpha that composites a frame is always computed from that same frame (no one-frame-stale mask).

Frames the model cannot take are fixed up here rather than crashing: grey or 4-channel or 16-bit frames are
converted to BGR uint8, frames larger than ``max_model_side`` are matted at a reduced size (the alpha is scaled
back), tiny frames are padded, and if the engine still rejects a size the frame is padded to a multiple of 32.

With a ``target_fps`` the engine runs inside ``matting_core.adaptive.AdaptiveMatter``, which lowers the
refinement region budget and then the matting resolution until the frame time fits (the alpha is still that
frame's, scaled back to its size). 0 switches it off and gives the engine its full quality back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import cv2
import numpy as np

from app.compositor import Compositor
from app.frames import FrameResult
from app.smoothing import TemporalSmoother
from matting_core.adaptive import AdaptiveConfig, AdaptiveMatter

log = logging.getLogger(__name__)

#: Frames smaller than this on a side are padded before matting (the encoder tokenises by 16 and pools x8).
MIN_MODEL_SIDE = 64


class MatteEngine(Protocol):
    """What the app needs from an engine (``matting_core.engine.MattingEngine`` or a stand-in)."""

    use_cra: bool

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> Any:
        """Returns an object with ``alpha`` (H, W float32) and optionally trimap, regions, timings_ms."""
        ...


class LoadingEngine:
    """Stand-in while the real model loads (a few seconds): alpha 0 everywhere.

    The output shows only the new background until the model is ready, so the real room never reaches the
    virtual camera unmasked. ``status_message`` is shown over the preview.
    """

    status_message = "Loading the matting model..."

    def __init__(self) -> None:
        self.use_cra = True
        self.region_budget = None

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(alpha=np.zeros(frame.shape[:2], np.float32), timings_ms={})


class MatteError(RuntimeError):
    """The engine failed on a frame (reported; the frame is passed through unmatted)."""


def to_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any camera-ish frame (grey, BGRA, 16-bit, float) as contiguous BGR uint8 (H, W, 3)."""
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating):
            frame = np.clip(frame * 255.0 if frame.max(initial=0) <= 1.0 else frame, 0, 255).astype(np.uint8)
        elif frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        else:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 1:
        frame = cv2.cvtColor(frame[..., 0], cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"cannot use a frame of shape {frame.shape}")
    return np.ascontiguousarray(frame)


def _pad_to(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    return cv2.copyMakeBorder(frame, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE)


def _seen_size(matter: Any, given: np.ndarray, content: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of ``content`` (the unpadded part of ``given``) in the pixels the model itself saw.

    Wrappers that resize (adaptive quality, a fixed-size ONNX export) say what the model saw in
    ``last_input_size``; the trimap and regions of the result refer to that size.
    """
    seen = getattr(matter, "last_input_size", None)
    gh, gw = given.shape[:2]
    if not seen or tuple(seen) == (gw, gh):
        return content
    return max(1, round(content[0] * seen[0] / gw)), max(1, round(content[1] * seen[1] / gh))


class FrameProcessor:
    """engine -> smoother -> compositor for one frame. Not thread-safe: one worker owns it.

    ``engine`` is always the engine itself (so CRA and other engine settings reach it directly); adaptive
    quality, when ``target_fps`` is set, is a wrapper around it that is rebuilt whenever either changes.
    ``clock`` (seconds) times every stage; tests pass a fake one.
    """

    def __init__(
        self,
        engine: MatteEngine,
        compositor: Compositor,
        smoother: TemporalSmoother | None = None,
        max_model_side: int = 3840,
        target_fps: float | None = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.compositor = compositor
        self.smoother = smoother if smoother is not None else TemporalSmoother(0.0)
        self.max_model_side = max_model_side
        self.clock = clock
        #: Per-frame milliseconds spent after ``process`` (the outputs): set by the pipeline, so adaptive
        #: quality aims at the whole frame time, not only the model's.
        self.extra_ms = 0.0
        self._engine = engine
        self._target_fps = 0.0
        self._adaptive: AdaptiveMatter | None = None
        self.target_fps = target_fps

    @property
    def engine(self) -> MatteEngine:
        return self._engine

    @engine.setter
    def engine(self, engine: MatteEngine) -> None:
        if engine is self._engine:
            return
        self._engine = engine
        self._rebuild_adaptive()  # the old engine's speed says nothing about the new one

    @property
    def target_fps(self) -> float:
        """Frames per second adaptive quality aims for; 0 = off (full quality)."""
        return self._target_fps

    @target_fps.setter
    def target_fps(self, fps: float | None) -> None:
        fps = float(fps or 0)
        if fps < 0:
            raise ValueError(f"target FPS must be 0 (off) or positive, got {fps:g}")
        self._target_fps = fps
        self._rebuild_adaptive()

    @property
    def adaptive(self) -> AdaptiveMatter | None:
        """The adaptive-quality wrapper around ``engine`` (None when off)."""
        return self._adaptive

    def _rebuild_adaptive(self) -> None:
        if self._adaptive is not None:
            self._adaptive.release()  # full quality back on the engine it was adjusting
            self._adaptive = None
        if self._target_fps > 0:
            config = AdaptiveConfig(target_fps=self._target_fps)
            if getattr(self._engine, "fixed_input", False):  # it resizes to one size anyway: scaling saves nothing
                config = replace(config, min_scale=1.0, max_scale=1.0)
            self._adaptive = AdaptiveMatter(self._engine, config, clock=self.clock)

    def _matte(self, frame: np.ndarray) -> tuple[np.ndarray, Any, tuple[int, int]]:
        """alpha (H, W) for ``frame`` plus the engine's detailed result and the size the model saw."""
        h, w = frame.shape[:2]
        model_in = frame
        scale = min(1.0, self.max_model_side / max(h, w))
        if scale < 1.0:
            model_in = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                                  interpolation=cv2.INTER_AREA)
        mh, mw = model_in.shape[:2]
        if min(mh, mw) < MIN_MODEL_SIDE:
            model_in = _pad_to(model_in, max(mh, MIN_MODEL_SIDE), max(mw, MIN_MODEL_SIDE))
        matter = self._adaptive if self._adaptive is not None else self._engine
        given = model_in
        try:
            result = matter.matte_detailed(given, channels="bgr")
        except (ValueError, RuntimeError) as first_error:
            ph, pw = (-(-s // 32) * 32 for s in model_in.shape[:2])
            if (ph, pw) == model_in.shape[:2]:
                raise MatteError(f"matting failed: {first_error}") from first_error
            log.info("engine rejected %sx%s (%s); retrying padded to %sx%s", mw, mh, first_error, pw, ph)
            given = _pad_to(model_in, ph, pw)
            try:
                result = matter.matte_detailed(given, channels="bgr")
            except Exception as exc:
                raise MatteError(f"matting failed: {exc}") from exc
        except Exception as exc:
            raise MatteError(f"matting failed: {exc}") from exc
        alpha = np.asarray(result.alpha, dtype=np.float32)
        if alpha.ndim == 3:
            alpha = alpha[..., 0]
        alpha = alpha[:mh, :mw]  # drop padding
        if alpha.shape != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(alpha, 0.0, 1.0), result, _seen_size(matter, given, (mw, mh))

    def process(self, frame: np.ndarray, index: int = 0) -> FrameResult:
        """Matte and composite ``frame`` (BGR). Raises ``MatteError`` if the engine fails on it."""
        clock = self.clock
        t0 = clock()
        frame = to_bgr8(frame)
        alpha, detail, model_size = self._matte(frame)
        t1 = clock()
        alpha = self.smoother(frame, alpha)
        t2 = clock()
        composite = self.compositor.compose(frame, alpha)
        t3 = clock()
        adaptive = self._adaptive
        if adaptive is not None:  # the frame's time outside the engine counts towards the target too
            adaptive.overhead_ms = max(0.0, (t3 - t0) * 1e3 - adaptive.last_ms) + self.extra_ms
        timings = {"matte": (t1 - t0) * 1e3}
        for key, value in (getattr(detail, "timings_ms", None) or {}).items():
            if key != "total":
                timings[key] = float(value)
        timings["smooth"] = (t2 - t1) * 1e3
        timings["composite"] = (t3 - t2) * 1e3
        timings["total"] = (t3 - t0) * 1e3
        trimap = getattr(detail, "trimap", None)
        regions = getattr(detail, "regions", None)
        return FrameResult(
            index=index,
            frame=frame,
            alpha=alpha,
            composite=composite,
            trimap=None if trimap is None else np.asarray(trimap),
            regions=None if regions is None else np.asarray(regions),
            model_size=model_size,
            timings_ms=timings,
            warning=getattr(self._engine, "status_message", ""),
            quality=adaptive.last_quality if adaptive is not None else None,
        )

    def passthrough(self, frame: np.ndarray, index: int, warning: str) -> FrameResult:
        """The unmatted frame, for when matting failed: the call must go on showing *something*."""
        frame = to_bgr8(frame)
        alpha = np.ones(frame.shape[:2], np.float32)
        return FrameResult(index=index, frame=frame, alpha=alpha, composite=frame, warning=warning)
