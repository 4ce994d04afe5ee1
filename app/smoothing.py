"""Light temporal smoothing of the alpha, only where it flickers and only where nothing moves.

Per-frame mattes shimmer in the uncertain band (hair, edges) even when the person sits still. Averaging with
the previous alpha calms that, but everywhere else it would drag a ghost of the last frame behind every
movement. So the running average applies only to pixels that are (a) uncertain in *this* frame's alpha and
(b) nearly unchanged in the camera picture since the last frame. Clear foreground/background pixels and
moving pixels always use this frame's alpha, so the mask never lags the picture.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.compositor import uncertain_band


class TemporalSmoother:
    """Stateful: feed frames in order; ``reset()`` when the source changes."""

    def __init__(self, strength: float = 0.3, motion_threshold: int = 10) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1), got {strength}")
        self.strength = strength
        self.motion_threshold = motion_threshold
        self._prev_alpha: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_alpha = None
        self._prev_gray = None

    def __call__(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """The smoothed alpha for ``frame`` (BGR uint8) given the model's ``alpha`` for that same frame."""
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        prev_alpha, prev_gray = self._prev_alpha, self._prev_gray
        out = alpha
        if self.strength > 0 and prev_alpha is not None and prev_alpha.shape == alpha.shape:
            still = cv2.absdiff(gray, prev_gray) <= self.motion_threshold
            mask = uncertain_band(alpha) & still
            if mask.any():
                out = alpha.copy()
                out[mask] = self.strength * prev_alpha[mask] + (1.0 - self.strength) * alpha[mask]
        self._prev_alpha, self._prev_gray = out, gray
        return out
