"""Put the person over the new background without halos.

A camera pixel on the hair edge is a mix of the person and the *old* room: I = a F + (1 - a) B_old. Blending
that pixel over a new background (a I + (1 - a) B_new) keeps a (1 - a) share of the old room, which shows as a
bright or dark fringe. So the compositor first estimates the foreground colour F inside the uncertain band with
the two-pass blur-fusion estimator of Forte & Pitié ("Approximate Fast Foreground Colour Estimation", ICIP
2021), which costs a few box blurs, and then blends a F + (1 - a) B_new. Where alpha is exactly 0 the output is
exactly the background, where it is exactly 1 exactly the camera pixel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from app.backgrounds import Background, PassthroughBackground

#: alpha values strictly inside (LO, HI) are "uncertain": only there is foreground colour estimated.
BAND_LO = 1.0 / 255.0
BAND_HI = 254.0 / 255.0


def uncertain_band(alpha: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels that are neither clear background nor clear foreground."""
    return (alpha > BAND_LO) & (alpha < BAND_HI)


def _blur_fusion_pass(
    image: np.ndarray, fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """One blur-fusion step (float32 arrays, colours in [0, 255]): smoothed F and B, then the F correction."""
    k = (2 * radius + 1, 2 * radius + 1)
    a = alpha[..., None]
    blur_a = cv2.blur(alpha, k)[..., None]
    fg_hat = cv2.blur(fg * a, k) / (blur_a + 1e-5)
    bg_hat = cv2.blur(bg * (1.0 - a), k) / ((1.0 - blur_a) + 1e-5)
    fg_new = fg_hat + a * (image - a * fg_hat - (1.0 - a) * bg_hat)
    return np.clip(fg_new, 0.0, 255.0), bg_hat


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours (H, W, 3 uint8): camera pixels, with the uncertain band's colours de-mixed.

    Pass 1 (large radius) runs at a quarter of the size to get smooth F and B estimates cheaply; pass 2 (small
    radius) runs at full size, only over the bounding box of the band.
    """
    band = uncertain_band(alpha)
    if not band.any():
        return image
    h, w = alpha.shape
    ys, xs = np.nonzero(band.any(axis=1))[0], np.nonzero(band.any(axis=0))[0]
    r_small = max(3, round(min(h, w) / 120))
    y0, y1 = max(0, ys[0] - 2 * r_small), min(h, ys[-1] + 2 * r_small + 1)
    x0, x1 = max(0, xs[0] - 2 * r_small), min(w, xs[-1] + 2 * r_small + 1)

    factor = 4 if min(h, w) >= 64 else 1
    small_size = (max(1, w // factor), max(1, h // factor))
    img_s = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA).astype(np.float32)
    a_s = cv2.resize(alpha, small_size, interpolation=cv2.INTER_AREA)
    r_large = max(2, round(min(h, w) / 12 / factor))
    fg_s, bg_s = _blur_fusion_pass(img_s, img_s, img_s, a_s, r_large)
    crop_size = (x1 - x0, y1 - y0)
    # Upscale only the crop's part of the coarse estimates.
    sx, sy = small_size[0] / w, small_size[1] / h
    affine = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]], np.float32)
    fg1 = cv2.warpAffine(fg_s, affine, crop_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    bg1 = cv2.warpAffine(bg_s, affine, crop_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)

    img_c = image[y0:y1, x0:x1].astype(np.float32)
    a_c = alpha[y0:y1, x0:x1]
    fg2, _ = _blur_fusion_pass(img_c, fg1, bg1, a_c, r_small)
    out = image.copy()
    band_c = band[y0:y1, x0:x1]
    out[y0:y1, x0:x1][band_c] = (fg2[band_c] + 0.5).astype(np.uint8)
    return out


def blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """a F + (1 - a) B per pixel, in one OpenCV call (exact at a = 0 and a = 1)."""
    return cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)


@dataclass
class CompositeTimings:
    background_ms: float = 0.0
    foreground_ms: float = 0.0
    blend_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.background_ms + self.foreground_ms + self.blend_ms


@dataclass
class Compositor:
    """Frame + alpha + background -> composite. Owned by the processing worker (not thread-safe by design)."""

    background: Background = field(default_factory=PassthroughBackground)
    #: De-mix edge colours (see module doc). Off only to compare.
    estimate_foreground: bool = True
    last_timings: CompositeTimings = field(default_factory=CompositeTimings)

    def set_background(self, background: Background) -> None:
        if background is not self.background:
            self.background.close()
        self.background = background

    def compose(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """``frame`` (H, W, 3 BGR uint8) with ``alpha`` (H, W float32 in [0, 1]) over the current background."""
        if alpha.shape != frame.shape[:2]:
            raise ValueError(f"alpha {alpha.shape} does not match the frame {frame.shape[:2]}")
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
        t0 = time.perf_counter()
        background = self.background.render(frame, alpha)
        t1 = time.perf_counter()
        if isinstance(self.background, PassthroughBackground):
            self.last_timings = CompositeTimings(background_ms=(t1 - t0) * 1e3)
            return frame
        foreground = estimate_foreground(frame, alpha) if self.estimate_foreground else frame
        t2 = time.perf_counter()
        out = blend(foreground, background, alpha)
        t3 = time.perf_counter()
        self.last_timings = CompositeTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return out
