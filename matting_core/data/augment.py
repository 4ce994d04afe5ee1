"""Training augmentation: one geometric warp shared by image/alpha/fg/bg, colour jitter, camera degradations.

Modelled on the authors' "v2" pipeline (PAPER-NOTES section 5): flip, cover-scale affine (scale, aspect,
rotation, shear, translation), colour jitter. Additions, because the target is a webcam: background
replacement from a pool (with the original photo kept in the mix), blur, sensor noise and JPEG artefacts
(applied to the network input only). The target trimap is computed on the final, augmented alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from matting_core.data.composite import composite
from matting_core.data.trimap import trimap_from_alpha


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs. Defaults follow the authors where they have one (PAPER-NOTES section 5).

    size: square training resolution (896 as the authors).
    scale: zoom relative to the "cover" scale (the photo just fills the frame); <1 shows the whole person small.
    aspect: extra x-scale factor; rotate_deg, shear_deg: +- range; translate: fraction of the frame.
    brightness/contrast/saturation: +- factor range; hue: +- fraction of the colour circle (0.05, half the
        authors' 0.1, so that skin does not turn green).
    original_bg_prob: probability of keeping the photo with its own background (real edges, real colour spill)
        instead of pasting the estimated foreground on a new background.
    blur_prob, noise_prob, jpeg_prob: webcam degradations of the input image only.
    trimap_kernel: morphology kernel of the target trimap (data.trimap).
    """

    size: int = 896
    flip_prob: float = 0.5
    scale: tuple[float, float] = (0.5, 1.5)
    aspect: tuple[float, float] = (0.7, 1.3)
    rotate_deg: float = 5.0
    shear_deg: float = 5.0
    translate: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.05
    original_bg_prob: float = 0.3
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.4, 1.5)
    noise_prob: float = 0.2
    noise_std: tuple[float, float] = (0.003, 0.03)
    jpeg_prob: float = 0.2
    jpeg_quality: tuple[int, int] = (40, 95)
    trimap_kernel: int = 7

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 16:
            raise ValueError(f"augment size must be a multiple of 16 and >= 32, got {self.size}")
        for name in ("flip_prob", "original_bg_prob", "blur_prob", "noise_prob", "jpeg_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        for name in ("scale", "aspect", "blur_sigma", "noise_std", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, got {(lo, hi)}")


def random_affine(src_hw: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """2x3 matrix mapping source pixels into the ``size`` x ``size`` output (flip, cover scale, jitter)."""
    h, w = src_hw
    out = cfg.size
    s = max(out / w, out / h) * rng.uniform(*cfg.scale)
    sx, sy = s * rng.uniform(*cfg.aspect), s
    if rng.random() < cfg.flip_prob:
        sx = -sx
    th = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    sh = math.tan(math.radians(rng.uniform(-cfg.shear_deg, cfg.shear_deg)))
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    lin = rot @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])
    # OpenCV puts pixel centres at integer coordinates: an image spans [-0.5, n - 0.5], centre (n - 1) / 2
    centre_out = np.full(2, (out - 1) / 2) + rng.uniform(-cfg.translate, cfg.translate, 2) * out
    centre_src = np.array([(w - 1) / 2, (h - 1) / 2])
    return np.concatenate([lin, (centre_out - lin @ centre_src)[:, None]], axis=1)


def touching_sides(alpha: np.ndarray, threshold: float = 0.05) -> dict[str, bool]:
    """Which borders of the photo the person is cut by (mean alpha along that border row/column)."""
    return {
        "top": float(alpha[0].mean()) > threshold,
        "bottom": float(alpha[-1].mean()) > threshold,
        "left": float(alpha[:, 0].mean()) > threshold,
        "right": float(alpha[:, -1].mean()) > threshold,
    }


def anchor_cut_edges(m: np.ndarray, src_hw: tuple[int, int], size: int, sides: dict[str, bool]) -> np.ndarray:
    """Shift the warp so borders where the person is cut land on or beyond the output frame's edge.

    Without this, zooming out or translating leaves a person "cut" by a straight line inside the frame, a shape
    no camera produces. Bottom wins over top and left over right when both cannot hold (photo smaller than
    the frame on that axis). The flip and rotation are accounted for by warping the border's corners and
    asking which output edge they face.
    """
    h, w = src_hw
    x0, y0, x1, y1 = -0.5, -0.5, w - 0.5, h - 0.5  # outer pixel borders (OpenCV pixel-centre convention)
    lo, hi = -0.5, size - 0.5
    corners = {
        "top": [(x0, y0), (x1, y0)], "bottom": [(x0, y1), (x1, y1)],
        "left": [(x0, y0), (x0, y1)], "right": [(x1, y0), (x1, y1)],
    }
    m = m.copy()
    for side in ("top", "right", "bottom", "left"):  # later sides win a conflict
        if not sides.get(side):
            continue
        p = np.array(corners[side], np.float64) @ m[:, :2].T + m[:, 2]
        if abs(p[0, 0] - p[1, 0]) > abs(p[0, 1] - p[1, 1]):  # runs horizontally in the output
            if p[:, 1].mean() >= size / 2:
                m[1, 2] += max(0.0, hi - p[:, 1].min())  # push down to/below the bottom edge
            else:
                m[1, 2] -= max(0.0, p[:, 1].max() - lo)  # push up to/above the top edge
        elif p[:, 0].mean() >= size / 2:
            m[0, 2] += max(0.0, hi - p[:, 0].min())
        else:
            m[0, 2] -= max(0.0, p[:, 0].max() - lo)
    return m


def warp(a: np.ndarray, m: np.ndarray, size: int, replicate: bool) -> np.ndarray:
    import cv2

    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.warpAffine(a, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def color_jitter(img: np.ndarray, params: tuple[float, float, float, float]) -> np.ndarray:
    """Brightness, contrast, saturation factors and hue shift (fraction of the circle) on float RGB [0, 1]."""
    import cv2

    b, c, s, hshift = params
    x = img * b
    mean = float(x.mean())
    x = np.clip((x - mean) * c + mean, 0, 1).astype(np.float32)
    if s != 1.0 or hshift != 0.0:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + hshift * 360.0) % 360.0
        hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(x, 0, 1).astype(np.float32)


def jitter_params(cfg: AugmentConfig, rng: np.random.Generator) -> tuple[float, float, float, float]:
    return (
        rng.uniform(1 - cfg.brightness, 1 + cfg.brightness),
        rng.uniform(1 - cfg.contrast, 1 + cfg.contrast),
        rng.uniform(1 - cfg.saturation, 1 + cfg.saturation),
        rng.uniform(-cfg.hue, cfg.hue),
    )


def degrade(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur, Gaussian noise and JPEG round trip, each with its probability (float RGB in [0, 1])."""
    import cv2

    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*cfg.blur_sigma))
    if rng.random() < cfg.noise_prob:
        img = img + rng.normal(0, rng.uniform(*cfg.noise_std), img.shape).astype(np.float32)
    img = np.clip(img, 0, 1).astype(np.float32)
    if rng.random() < cfg.jpeg_prob:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", np.round(img * 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
    return img


def augment_sample(
    photo: np.ndarray,
    alpha: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    new_bg: np.ndarray | None,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """One training sample at ``cfg.size`` from a photo, its alpha and estimated fg/bg (float [0, 1]).

    ``new_bg`` (size x size x 3) replaces the background unless the draw keeps the original photo
    (probability ``original_bg_prob``, or always when ``new_bg`` is None). Returns float32 arrays image, fg,
    bg (H, W, 3), alpha (H, W) and the uint8 target trimap (H, W).
    """
    size = cfg.size
    m = random_affine(alpha.shape[:2], cfg, rng)
    m = anchor_cut_edges(m, alpha.shape[:2], size, touching_sides(alpha))
    keep_original = new_bg is None or rng.random() < cfg.original_bg_prob
    if keep_original:
        # replicate borders: the photo, its bg and a person cut by the frame edge continue outwards
        a = np.clip(warp(alpha, m, size, True), 0, 1)
        f = warp(fg, m, size, True)
        b = warp(bg, m, size, True)
        p = warp(photo, m, size, True)
        jp = jitter_params(cfg, rng)
        f, b, p = color_jitter(f, jp), color_jitter(b, jp), color_jitter(p, jp)
        image = p
    else:
        a = np.clip(warp(alpha, m, size, False), 0, 1)
        f = color_jitter(warp(fg, m, size, True), jitter_params(cfg, rng))
        b = color_jitter(new_bg.astype(np.float32), jitter_params(cfg, rng))  # type: ignore[union-attr]
        image = composite(f, b, a)
    image = degrade(np.clip(image, 0, 1).astype(np.float32), cfg, rng)
    return {
        "image": image,
        "alpha": a.astype(np.float32),
        "fg": f.astype(np.float32),
        "bg": b.astype(np.float32),
        "trimap": trimap_from_alpha(a, cfg.trimap_kernel),
    }


def to_tensors(sample: dict[str, np.ndarray]) -> dict[str, Any]:
    """numpy HWC sample -> torch CHW tensors (trimap: long (H, W)), the layout TrainBatch.collate stacks."""
    import torch

    chw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # noqa: E731
    return {
        "image": chw(sample["image"]),
        "alpha": torch.from_numpy(np.ascontiguousarray(sample["alpha"]))[None],
        "fg": chw(sample["fg"]),
        "bg": chw(sample["bg"]),
        "trimap": torch.from_numpy(sample["trimap"].astype(np.int64)),
    }
