"""Procedural training composites for CI smoke tests: soft-edged "people" (head + shoulders blobs with a few
hair strands) over gradient/noise backgrounds. Deterministic per (seed, index); no files needed.
"""

from __future__ import annotations

import numpy as np

from matting_core.data.composite import composite, gradient_background
from matting_core.data.trimap import trimap_from_alpha


def _blob_alpha(size: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cx = int(size * rng.uniform(0.35, 0.65))
    head_r = int(size * rng.uniform(0.1, 0.18))
    head_y = int(size * rng.uniform(0.25, 0.45))
    cv2.ellipse(mask, (cx, head_y), (head_r, int(head_r * 1.25)), rng.uniform(-15, 15), 0, 360, 255, -1)
    shoulders_w = int(head_r * rng.uniform(2.0, 3.2))
    top = head_y + int(head_r * 1.1)
    cv2.ellipse(mask, (cx, top + size // 2), (shoulders_w, size // 2), 0, 0, 360, 255, -1)
    # hair strands: thin lines from the head outwards (sub-pixel wide after blur -> fractional alpha)
    for _ in range(int(rng.integers(3, 9))):
        ang = rng.uniform(-np.pi, 0)
        x0, y0 = cx + head_r * np.cos(ang), head_y + head_r * 1.2 * np.sin(ang)
        length = head_r * rng.uniform(0.3, 0.9)
        x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
        cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), int(rng.integers(120, 255)), 1, cv2.LINE_AA)
    sigma = rng.uniform(0.6, 2.0) * size / 128
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    return np.clip(alpha, 0, 1)


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    base = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    noise = cv2.resize(rng.normal(0, 0.15, (8, 8, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(base[None, None] + noise, 0, 1).astype(np.float32)


def synthetic_sample(size: int, seed: int, index: int, trimap_kernel: int = 7) -> dict[str, np.ndarray]:
    """One composite: image, fg, bg (H, W, 3) float32, alpha (H, W) float32, trimap (H, W) uint8."""
    rng = np.random.default_rng([seed, index])
    alpha = _blob_alpha(size, rng)
    fg = _texture(size, rng)
    bg = gradient_background((size, size), rng)
    image = composite(fg, bg, alpha)
    image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)
    return {"image": image, "alpha": alpha, "fg": fg, "bg": bg, "trimap": trimap_from_alpha(alpha, trimap_kernel)}
