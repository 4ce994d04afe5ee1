"""Matting with ONNX Runtime alone: the exported coarse and refinement graphs, glued with numpy and scipy.

This backend deliberately imports no torch. Importing torch (the CUDA build) costs about 520 MB of resident
memory before any frame is processed, more than the whole working set of a 4K frame; without it a 4K frame
fits comfortably under the RVM peer's 1.3 GB. The glue between the graphs is small and mirrors the model's
own functions (``matting_core.regions`` select/crop/paste, ``matting_core.neighbours.knn_kdtree``);
``tests/matting_core/test_onnx.py`` pins it to PyTorch's output (same regions, same alpha).
Interface as ``MattingEngine``: ``matte``, ``matte_detailed``, settable ``use_cra`` / ``region_budget`` /
``clear_background`` / ``fill_foreground``.

Exports with a coarse input scale < 1 (``manifest.coarse_scale``, the quality setting ``MattingEngine`` picks
automatically) take the frame replicate-padded and shrunk with ``cv2.resize(INTER_AREA)`` in the coarse graph;
the logits are cropped and regridded to the full 1/8 grid here with ``cv2.resize(INTER_LINEAR)``, whose
half-pixel centres are torch's ``align_corners=False`` bilinear (same values to ~1e-5); refinement stays at
full resolution. INTER_AREA (a box filter) stands in for torch's antialiased bilinear downscale, the only
deliberate difference from PyTorch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from matting_core.backends.onnx_manifest import ExportManifest
from matting_core.backends.ort_session import OrtOptions, OrtSession, create_session
from matting_core.config import CLEAR_BACKGROUND_BELOW, DROP_ISLANDS_BELOW, FILL_FOREGROUND_AT
from matting_core.islands import drop_unsure_islands_numpy
from matting_core.kdtree_knn import kdtree_knn

log = logging.getLogger(__name__)

#: Above this many pixels per frame the CPU memory arena is switched off (see ``OrtOptions.memory_arena``).
ARENA_MAX_PIXELS = 1920 * 1088
BACKGROUND, UNKNOWN, FOREGROUND = 0, 1, 2  # trimap classes, as in matting_core.regions


@dataclass
class OnnxMatteResult:
    """The fields of ``matting_core.engine.MatteResult`` (that module imports torch, which this one avoids):
    alpha (H, W) float32; coarse_alpha / trimap at 1/8; regions (N, 2) int32 (y, x); timings_ms per stage."""

    alpha: np.ndarray
    coarse_alpha: np.ndarray
    trimap: np.ndarray
    regions: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


def as_rgb(frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
    """(H, W, 3|4) uint8 RGB/BGR(A) -> contiguous (H, W, 3) uint8 RGB, or a clear error."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {getattr(frame, 'shape', type(frame))}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8, got {frame.dtype}")
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels must be 'rgb' or 'bgr', not {channels!r}")
    frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1] if channels == "bgr" else frame)


def select_regions(trimap_logits: np.ndarray, budget: int | None) -> np.ndarray:
    """(B, 3, h, w) logits -> (N, 3) int64 rows (batch, y, x) in row-major order.

    budget None: every cell whose argmax is "unknown"; else the ``budget`` cells of highest p(unknown) per
    image (ties: the lower index), like ``matting_core.regions.select_uncertain`` / ``select_top_k``.
    """
    bsz, _, h, w = trimap_logits.shape
    if budget is None:
        return np.argwhere(trimap_logits.argmax(axis=1) == UNKNOWN)
    k = min(int(budget), h * w)
    z = trimap_logits - trimap_logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = (e[:, UNKNOWN] / e.sum(axis=1)).reshape(bsz, -1)
    flat = np.sort(np.argsort(-p, axis=1, kind="stable")[:, :k], axis=1)
    batch = np.repeat(np.arange(bsz), k)
    flat = flat.reshape(-1)
    return np.stack([batch, flat // w, flat % w], axis=1)


def _cells(image: np.ndarray, r: int) -> np.ndarray:
    b, c, h, w = image.shape
    return image.reshape(b, c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3, 5)


def _resize_chw(t: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) float32 -> (C, height, width): bilinear, half-pixel centres (torch's align_corners=False)."""
    out = cv2.resize(np.ascontiguousarray(t.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LINEAR)
    return out.reshape(height, width, -1).transpose(2, 0, 1)


def trimap_class_pixels(trimap_logits: np.ndarray, cls: int, r: int, size: tuple[int, ...]) -> np.ndarray:
    """``matting_core.regions.trimap_class_pixels`` in numpy: (B, 1, H, W) bool, cropped to ``size`` = (H, W)."""
    mask = (trimap_logits.argmax(axis=1, keepdims=True) == cls).repeat(r, axis=2).repeat(r, axis=3)
    return mask[..., : size[0], : size[1]]


def clear_faint_background(alpha: np.ndarray, trimap_logits: np.ndarray, below: float, r: int) -> np.ndarray:
    """``matting_core.regions.clear_faint_background`` in numpy: alpha (B, 1, H, W) under ``below`` -> 0 in
    the cells whose trimap argmax is background (``below`` <= 0 returns ``alpha`` itself)."""
    if below <= 0:
        return alpha
    bg = trimap_class_pixels(trimap_logits, BACKGROUND, r, alpha.shape[-2:])
    return np.where(bg & (alpha < below), np.float32(0.0), alpha)


def fill_definite_foreground(alpha: np.ndarray, trimap_logits: np.ndarray, full_at: float, r: int) -> np.ndarray:
    """``matting_core.regions.fill_definite_foreground`` in numpy: alpha (B, 1, H, W) / ``full_at``, clipped to 1,
    in the cells whose trimap argmax is foreground (``full_at`` >= 1 returns ``alpha`` itself)."""
    if full_at >= 1:
        return alpha
    fg = trimap_class_pixels(trimap_logits, FOREGROUND, r, alpha.shape[-2:])
    return np.where(fg, np.minimum(alpha / np.float32(full_at), np.float32(1.0)), alpha).astype(np.float32)


def knn_regions(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """KD-tree k nearest regions of the same image (rows: (N, 3) = image, y, x); see ``kdtree_knn``."""
    return kdtree_knn(rows[:, 1:], rows[:, 0], k)


class OnnxMattingEngine:
    """Runs an export directory (see ``matting_core.backends.onnx_export``) on ONNX Runtime.

    Frames must have the exported size (the coarse graph's shapes are fixed). With a static-budget export
    ``region_budget`` is pinned to that budget.
    """

    def __init__(self, export_dir: str | Path, options: OrtOptions | None = None, use_cra: bool = True,
                 region_budget: int | None = None, clear_background: float = CLEAR_BACKGROUND_BELOW,
                 fill_foreground: float = FILL_FOREGROUND_AT, drop_islands: float = DROP_ISLANDS_BELOW) -> None:
        self.manifest = ExportManifest.load(export_dir)
        if options is None:
            big = self.manifest.width * self.manifest.height > ARENA_MAX_PIXELS
            options = OrtOptions(memory_arena=not big)
        d = Path(export_dir)
        self.coarse: OrtSession = create_session(d / self.manifest.files["coarse"], options)
        self.refiners: dict[bool, OrtSession] = {
            True: create_session(d / self.manifest.files["refine_cra"], options),
            False: create_session(d / self.manifest.files["refine_nocra"], options),
        }
        self.use_cra = use_cra
        self.clear_background = clear_background  # as EngineOptions.clear_background
        self.fill_foreground = fill_foreground  # as EngineOptions.fill_foreground
        self.drop_islands = drop_islands  # as EngineOptions.drop_islands
        self._budget: int | None = None
        self.region_budget = region_budget if self.manifest.budget is None else self.manifest.budget
        self.knn_k = self.manifest.knn_k
        self.region_size = int(self.manifest.model_config.get("region_size", 8))
        self.is_trained = self.manifest.trained
        if not self.is_trained:
            log.warning("the ONNX export in %s was made from RANDOM weights: its mattes are meaningless", d)

    @property
    def provider(self) -> str:
        return self.coarse.short_provider

    @property
    def region_budget(self) -> int | None:
        return self._budget

    @region_budget.setter
    def region_budget(self, value: int | None) -> None:
        fixed = self.manifest.budget
        if fixed is not None and value != fixed:
            raise ValueError(f"this export has a static region budget of {fixed}; re-export to change it")
        self._budget = value

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> OnnxMatteResult:
        """Same contract as ``MattingEngine.matte_detailed``."""
        start = time.perf_counter()
        rgb = as_rgb(frame, channels)
        h, w = rgb.shape[:2]
        if (w, h) != (self.manifest.width, self.manifest.height):
            raise ValueError(f"frame is {w}x{h} but this ONNX export is for "
                             f"{self.manifest.width}x{self.manifest.height}: export that size or resize the frame")
        r = self.region_size
        if self.manifest.scaled:
            alpha_logits, trimap_logits, up = self._scaled_coarse(rgb)
        else:
            alpha_logits, trimap_logits, up = self.coarse.run({"frame": rgb[None]})
        rows = select_regions(trimap_logits, self._budget)
        if len(rows):  # crop RGB + upsampled alpha cells; the model replicate-pads the frame to (hp, wp)
            py = np.minimum(rows[:, 1:2] * r + np.arange(r), h - 1)  # (N, r) source rows (edge = replicate)
            px = np.minimum(rows[:, 2:3] * r + np.arange(r), w - 1)
            rgb_p = rgb[py[:, :, None], px[:, None, :]].astype(np.float32) / np.float32(255.0)  # (N, r, r, 3)
            patches = np.concatenate([rgb_p.transpose(0, 3, 1, 2),
                                      _cells(up, r)[rows[:, 0], rows[:, 1], rows[:, 2]]], axis=1)
        t_coarse = time.perf_counter()
        t_knn = t_coarse
        alpha = up
        if len(rows):
            feed = {"patches": np.ascontiguousarray(patches, dtype=np.float32)}
            if self.use_cra:
                index, valid = knn_regions(rows, self.knn_k)
                t_knn = time.perf_counter()
                feed.update(coords=np.ascontiguousarray(rows[:, 1:], dtype=np.int64), neighbour_index=index,
                            neighbour_valid=valid)
            refined = self.refiners[self.use_cra].run(feed)[0]
            alpha = up.copy()
            _cells(alpha, r)[rows[:, 0], rows[:, 1], rows[:, 2]] = refined
        alpha = clear_faint_background(alpha, trimap_logits, self.clear_background, r)
        alpha = fill_definite_foreground(alpha, trimap_logits, self.fill_foreground, r)
        alpha = drop_unsure_islands_numpy(alpha[..., :h, :w], self.drop_islands, r)
        t_refine = time.perf_counter()
        result = OnnxMatteResult(
            alpha=np.ascontiguousarray(alpha[0, 0, :h, :w]),
            coarse_alpha=(1.0 / (1.0 + np.exp(-alpha_logits[0, 0]))).astype(np.float32),
            trimap=trimap_logits[0].argmax(0).astype(np.uint8),
            regions=rows[:, 1:].astype(np.int32),
            timings_ms={"coarse": (t_coarse - start) * 1000.0, "knn": (t_knn - t_coarse) * 1000.0,
                        "refine": (t_refine - t_knn) * 1000.0},
        )
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return result

    @property
    def coarse_scale(self) -> float:
        """The coarse input scale baked into the export (1.0 = the coarse pass sees the full frame)."""
        return self.manifest.coarse_scale

    def _scaled_coarse(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``PortraitMattingModel._coarse`` with a scale < 1, plus the sigmoid/x8 upsampling of ``forward``:
        (1, 1, h8, w8) and (1, 3, h8, w8) logits on the padded frame's grid, (1, 1, Hp, Wp) upsampled alpha."""
        m, r = self.manifest, self.region_size
        h, w = rgb.shape[:2]
        hp, wp = m.padded_height, m.padded_width
        if (hp, wp) != (h, w):  # the model shrinks the replicate-padded frame, so its edge cells match
            rgb = cv2.copyMakeBorder(rgb, 0, hp - h, 0, wp - w, cv2.BORDER_REPLICATE)
        small = cv2.resize(rgb, (m.coarse_width, m.coarse_height), interpolation=cv2.INTER_AREA)
        alpha_s, trimap_s = self.coarse.run({"frame": small[None]})[:2]
        rows, cols = m.coarse_cells
        h8, w8 = hp // r, wp // r
        alpha_logits = _resize_chw(alpha_s[0, :, :rows, :cols], h8, w8)[None]
        trimap_logits = _resize_chw(trimap_s[0, :, :rows, :cols], h8, w8)[None]
        coarse_alpha = (1.0 / (1.0 + np.exp(-alpha_logits[0]))).astype(np.float32)
        up = _resize_chw(coarse_alpha, hp, wp)[None]
        return alpha_logits, trimap_logits, up

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
        return self.matte_detailed(frame, channels).alpha
