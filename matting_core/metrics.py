"""Matting metrics, defined as in the standard portrait-matting benchmark code (P3M-10k's evaluation).

All functions take ``pred`` and ``gt`` as (H, W) arrays in [0, 1] (uint8 is read as 0..255) at the original
resolution, and trimaps in the benchmark encoding 0 = background, 128 = unknown, 255 = foreground.
Scaling conventions (PAPER-NOTES section 7), so numbers are comparable with published tables:

- SAD    = sum |p - g| / 1000 over the whole image.
- SAD-T  = the same after p is set to 1 where the trimap is 255 and 0 where it is 0 (still summed over the
           whole image, so GT values that are not exactly 0/1 inside the known areas count too).
- MSE    = mean (p - g)^2 over the whole image; MAD = mean |p - g|.
- Grad   = sum over the image of (|grad p| - |grad g|)^2 / 10, first derivatives by Gaussian filtering
           (sigma 1.4, scipy ``gaussian_filter``, its default reflect border).
- Conn   = sum |phi(p) - phi(g)| / 1000 with thresholds 0.1 .. 1.0 (step 0.1) and the largest 4-connected
           component of (p >= t) & (g >= t); phi = 1 - d * [d >= 0.15], d = value - first failing threshold.
- IoU    = |p >= 0.5 and g >= 0.5| / |p >= 0.5 or g >= 0.5| (1 when both are empty); not a benchmark metric,
           but the number that says whether the person is found at all.

The benchmark reports each metric as the plain mean over images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Names of the per-image metrics, in report order. SAD-T needs a trimap.
METRIC_NAMES: tuple[str, ...] = ("SAD", "SAD-T", "MSE", "MAD", "Grad", "Conn", "IoU")
#: Metrics where higher is better (all others: lower is better).
HIGHER_IS_BETTER: frozenset[str] = frozenset({"IoU"})

TRIMAP_BG, TRIMAP_UNKNOWN, TRIMAP_FG = 0, 128, 255


def as_unit_float(x: np.ndarray, name: str = "alpha") -> np.ndarray:
    """(H, W) uint8 0..255 or float 0..1 -> float64 in [0, 1]; clear errors for other shapes/ranges."""
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a single-channel (H, W) image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    a = a.astype(np.float64)
    if a.size and (np.nanmin(a) < -1e-6 or np.nanmax(a) > 1 + 1e-6):
        raise ValueError(f"{name} as float must lie in [0, 1], got range [{a.min():.3g}, {a.max():.3g}]")
    return np.clip(a, 0.0, 1.0)


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_unit_float(pred, "prediction"), as_unit_float(gt, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
    return p, g


def _trimap_like(trimap: np.ndarray, p: np.ndarray) -> np.ndarray:
    t = np.asarray(trimap)
    if t.shape != p.shape:
        raise ValueError(f"trimap {t.shape} and prediction {p.shape} differ in size")
    return t


def sad(pred: np.ndarray, gt: np.ndarray) -> float:
    """Sum of absolute differences over the whole image, / 1000."""
    p, g = _pair(pred, gt)
    return float(np.abs(p - g).sum() / 1000.0)


def sad_t(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """SAD after forcing the prediction to the trimap's known values (benchmark definition, see module doc)."""
    p, g = _pair(pred, gt)
    t = _trimap_like(trimap, p)
    p = p.copy()
    p[t == TRIMAP_FG] = 1.0
    p[t == TRIMAP_BG] = 0.0
    return float(np.abs(p - g).sum() / 1000.0)


def sad_by_trimap(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> dict[str, float]:
    """SAD split by the trimap's three areas (each /1000, summing to SAD).

    ``unknown`` is the edge band SAD-T is about; ``foreground`` counts holes punched in the person and
    ``background`` counts scenery kept as person. A model far behind its teacher on SAD but not on SAD-T
    fails on the coarse segmentation, not on the edges, and this split says which way.
    """
    p, g = _pair(pred, gt)
    t = _trimap_like(trimap, p)
    err = np.abs(p - g)
    return {area: float(err[t == code].sum() / 1000.0)
            for area, code in (("background", TRIMAP_BG), ("unknown", TRIMAP_UNKNOWN), ("foreground", TRIMAP_FG))}


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared error over the whole image."""
    p, g = _pair(pred, gt)
    return float(((p - g) ** 2).mean())


def mad(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute difference over the whole image."""
    p, g = _pair(pred, gt)
    return float(np.abs(p - g).mean())


def gradient_magnitude(a: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """|grad a| from first-order Gaussian derivative filters (float32, as the benchmark computes it)."""
    dy = ndimage.gaussian_filter(a, sigma=sigma, order=(1, 0), output=np.float32)
    dx = ndimage.gaussian_filter(a, sigma=sigma, order=(0, 1), output=np.float32)
    return np.sqrt(dx.astype(np.float64) ** 2 + dy.astype(np.float64) ** 2)


def grad(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    """Gradient error: sum of squared differences of Gaussian gradient magnitudes, / 10."""
    p, g = _pair(pred, gt)
    return float(((gradient_magnitude(p, sigma) - gradient_magnitude(g, sigma)) ** 2).sum() / 10.0)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of ``mask`` (ties: first in raster order), or None if empty."""
    labels, n = ndimage.label(mask)  # default structure in 2-D = 4-connectivity
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def conn(pred: np.ndarray, gt: np.ndarray, step: float = 0.1) -> float:
    """Connectivity error (benchmark definition, see module doc), / 1000."""
    p, g = _pair(pred, gt)
    thresholds = np.arange(0.0, 1.0 + step, step)
    level = np.full(p.shape, -1.0)  # first threshold at which a pixel drops out of the main component
    for i in range(1, thresholds.size):
        omega = _largest_component((p >= thresholds[i]) & (g >= thresholds[i]))
        if omega is None:
            continue
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1.0
    d_p, d_g = p - level, g - level
    phi_p = 1.0 - d_p * (d_p >= 0.15)
    phi_g = 1.0 - d_g * (d_g >= 0.15)
    return float(np.abs(phi_p - phi_g).sum() / 1000.0)


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of the thresholded mattes (1.0 when both are empty)."""
    p, g = _pair(pred, gt)
    pb, gb = p >= threshold, g >= threshold
    union = np.logical_or(pb, gb).sum()
    return 1.0 if union == 0 else float(np.logical_and(pb, gb).sum() / union)


def benchmark_trimap(gt: np.ndarray, kernel: int = 30) -> np.ndarray:
    """Evaluation trimap 0/128/255 from a GT matte, as the PPM-100 benchmark builds it (PAPER-NOTES section 7).

    Unknown = dilate(alpha > 0) minus erode(alpha == 1), elliptical ``kernel`` x ``kernel`` element.
    """
    import cv2

    g = np.round(as_unit_float(gt, "ground truth") * 255).astype(np.uint8)
    se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    fg = cv2.erode((g == 255).astype(np.uint8), se)
    not_bg = cv2.dilate((g > 0).astype(np.uint8), se)
    out = np.full(g.shape, TRIMAP_UNKNOWN, np.uint8)
    out[not_bg == 0] = TRIMAP_BG
    out[fg == 1] = TRIMAP_FG
    return out


def evaluate_pair(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None) -> dict[str, float]:
    """Every metric for one image; SAD-T only when a trimap is given."""
    p, g = _pair(pred, gt)
    out = {"SAD": sad(p, g)}
    if trimap is not None:
        out["SAD-T"] = sad_t(p, g, trimap)
    out.update(MSE=mse(p, g), MAD=mad(p, g), Grad=grad(p, g), Conn=conn(p, g), IoU=iou(p, g))
    return out


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Plain mean over images of each metric present in every row."""
    if not rows:
        return {}
    names = [n for n in METRIC_NAMES if all(n in r for r in rows)]
    return {n: float(np.mean([r[n] for r in rows])) for n in names}
