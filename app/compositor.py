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


def _blur_estimates(
    fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Local alpha-weighted means of F and (1 - alpha)-weighted means of B (float32, box radius ``radius``)."""
    k = (2 * radius + 1, 2 * radius + 1)
    a = alpha[..., None]
    blur_a = cv2.blur(alpha, k)[..., None]
    fg_hat = cv2.blur(fg * a, k) / (blur_a + 1e-5)
    bg_hat = cv2.blur(bg * (1.0 - a), k) / ((1.0 - blur_a) + 1e-5)
    return fg_hat, bg_hat


def _correct(image: np.ndarray, alpha: np.ndarray, fg_hat: np.ndarray, bg_hat: np.ndarray) -> np.ndarray:
    """The blur-fusion update F = F^ + a (I - a F^ - (1 - a) B^), clipped to [0, 255]."""
    a = alpha[..., None]
    return np.clip(fg_hat + a * (image - a * fg_hat - (1.0 - a) * bg_hat), 0.0, 255.0)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours (H, W, 3 uint8): camera pixels, with the uncertain band's colours de-mixed.

    Pass 1 (large radius) runs at a quarter of the size for smooth first F and B estimates. Pass 2 (small
    radius) averages over the band's bounding box at a resolution where its radius is still >= 3 px (full size
    up to 720p, coarser above: the averages are smooth anyway), and the final per-pixel correction uses the
    full-size picture and alpha, only at the band's pixels.
    """
    band = uncertain_band(alpha)
    if not band.any():
        return image
    h, w = alpha.shape
    ys, xs = np.nonzero(band.any(axis=1))[0], np.nonzero(band.any(axis=0))[0]
    r_small = max(3, round(min(h, w) / 120))
    margin = 2 * r_small
    y0, y1 = max(0, ys[0] - margin), min(h, ys[-1] + margin + 1)
    x0, x1 = max(0, xs[0] - margin), min(w, xs[-1] + margin + 1)

    # Pass 1 at 1/4 size.
    f1 = 4 if min(h, w) >= 64 else 1
    size1 = (max(1, w // f1), max(1, h // f1))
    img1 = cv2.resize(image, size1, interpolation=cv2.INTER_AREA).astype(np.float32)
    a1 = cv2.resize(alpha, size1, interpolation=cv2.INTER_AREA)
    fg_hat1, bg_hat1 = _blur_estimates(img1, img1, a1, max(2, round(min(h, w) / 12 / f1)))
    fg1 = _correct(img1, a1, fg_hat1, bg_hat1)

    # Pass 2 over the band's bounding box, at 1/f2 size.
    f2 = max(1, round(min(h, w) / 720))
    cw, ch = x1 - x0, y1 - y0
    size2 = (max(1, cw // f2), max(1, ch // f2))
    img_c = image[y0:y1, x0:x1]
    a_c = alpha[y0:y1, x0:x1]
    scale1 = (size1[0] / w, size1[1] / h)
    # Resample the pass-1 fields onto the pass-2 grid: pixel (u, v) of that grid covers full-frame pixels
    # starting at (x0 + f2 u, y0 + f2 v).
    affine = np.array([[scale1[0] * f2, 0, (x0 + f2 / 2) * scale1[0] - 0.5],
                       [0, scale1[1] * f2, (y0 + f2 / 2) * scale1[1] - 0.5]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    fg1_c = cv2.warpAffine(fg1, affine, size2, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    bg1_c = cv2.warpAffine(bg_hat1, affine, size2, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    a2 = a_c if f2 == 1 else cv2.resize(a_c, size2, interpolation=cv2.INTER_AREA)
    fg_hat2, bg_hat2 = _blur_estimates(fg1_c, bg1_c, a2, max(2, round(r_small / f2)))

    # Final correction at the band's pixels, full size.
    by, bx = np.nonzero(band[y0:y1, x0:x1])
    gy, gx = np.minimum(by // f2, size2[1] - 1), np.minimum(bx // f2, size2[0] - 1)
    fg_b = _correct(img_c[by, bx].astype(np.float32), a_c[by, bx], fg_hat2[gy, gx], bg_hat2[gy, gx])
    out = image.copy()
    out[y0 + by, x0 + bx] = (fg_b + 0.5).astype(np.uint8)
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
