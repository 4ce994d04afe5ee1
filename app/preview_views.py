"""What the preview can show: the output, the original, the alpha, or the trimap with refined regions.

Plain numpy/OpenCV on the small preview frame (no Qt), so the views are testable and cheap. Mirroring
happens here and only here: the virtual camera and recordings are never mirrored.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.frames import PreviewFrame
from matting_core.adaptive import QualitySetting

#: BGR tints for the trimap view.
UNKNOWN_TINT = (0, 215, 255)  # amber: the coarse net is unsure here
REFINED_TINT = (60, 60, 255)  # red: cells the refinement network (with CRA if on) re-computed
VIEW_LABELS = {
    "output": "Output",
    "original": "Original",
    "alpha": "Alpha matte",
    "trimap": "Trimap + refined regions",
}


def _cells_to_mask(cells: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(grid_shape, np.uint8)
    if cells is not None and len(cells):
        ys = np.clip(cells[:, 0], 0, grid_shape[0] - 1)
        xs = np.clip(cells[:, 1], 0, grid_shape[1] - 1)
        mask[ys, xs] = 1
    return mask


def trimap_overlay(preview: PreviewFrame) -> np.ndarray:
    """The original, dimmed where the trimap says background, amber where unsure, red where refined."""
    frame = preview.frame
    h, w = frame.shape[:2]
    if preview.trimap is None or preview.trimap.size == 0 or preview.model_size[0] == 0:
        return frame
    trimap = preview.trimap
    gh, gw = trimap.shape[:2]
    mw, mh = preview.model_size
    # Trimap cells are 8x8 model pixels (the grid may extend past the frame into the engine's padding):
    # upscale the grid to model pixels, crop to the model frame, then scale to the preview.
    def to_preview(grid: np.ndarray) -> np.ndarray:
        up = cv2.resize(grid, (gw * 8, gh * 8), interpolation=cv2.INTER_NEAREST)[:mh, :mw]
        return cv2.resize(up, (w, h), interpolation=cv2.INTER_NEAREST)

    tri = to_preview(trimap.astype(np.uint8))
    refined = to_preview(_cells_to_mask(preview.regions, (gh, gw))) if preview.regions is not None else None
    out = frame.astype(np.float32)
    out[tri == 0] *= 0.35
    for mask, tint in ((tri == 1, UNKNOWN_TINT), (refined == 1 if refined is not None else None, REFINED_TINT)):
        if mask is not None and mask.any():
            out[mask] = 0.45 * out[mask] + 0.55 * np.float32(tint)
    return out.astype(np.uint8)


def render_view(preview: PreviewFrame, view: str, mirror: bool) -> np.ndarray:
    """The BGR picture to paint for ``view`` (output | original | alpha | trimap)."""
    if view == "original":
        image = preview.frame
    elif view == "alpha":
        a8 = (np.clip(preview.alpha, 0, 1) * 255 + 0.5).astype(np.uint8)
        image = cv2.cvtColor(a8, cv2.COLOR_GRAY2BGR)
    elif view == "trimap":
        image = trimap_overlay(preview)
    else:
        image = preview.composite
    if mirror:
        image = cv2.flip(image, 1)
    return np.ascontiguousarray(image)


def quality_label(quality: QualitySetting | None) -> str:
    """'adaptive 0.75x, 300 regions': the level adaptive quality runs at ('' when it is off)."""
    if quality is None:
        return ""
    return f"adaptive {round(quality.coarse_scale, 2):g}x, {quality.region_budget} regions"


def stats_lines(preview: PreviewFrame, use_cra: bool) -> list[str]:
    """Short lines for the preview's overlay: FPS, per-stage milliseconds and the adaptive quality level."""
    t = preview.timings_ms
    w, h = preview.full_size
    fps = f"{preview.fps:4.1f} FPS" if preview.fps > 0 else "-- FPS"
    lines = [f"{fps}   {w}x{h}   CRA {'on' if use_cra else 'off'}   dropped {preview.dropped}"]
    stages = "   ".join(f"{k} {t[k]:.0f}" for k in ("coarse", "knn", "refine") if k in t)
    lines.append(f"matte {t.get('matte', 0):.0f} ms" + (f"  ({stages})" if stages else ""))
    lines.append(f"smooth {t.get('smooth', 0):.0f}   composite {t.get('composite', 0):.0f}   "
                 f"sinks {t.get('sinks', 0):.0f}   latency {t.get('latency', 0):.0f} ms")
    if preview.quality is not None:
        lines.append(quality_label(preview.quality))
    return lines
