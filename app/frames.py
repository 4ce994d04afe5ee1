"""The records that travel between the pipeline's stages (plain data, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from matting_core.adaptive import QualitySetting


@dataclass(frozen=True)
class CapturedFrame:
    """A camera/file frame as the capture thread grabbed it. ``frame`` is BGR uint8 (H, W, 3)."""

    frame: np.ndarray
    index: int
    #: ``time.monotonic()`` when the frame was grabbed: end-to-end latency is measured from here.
    timestamp: float


@dataclass
class FrameResult:
    """One processed frame: everything the sinks and the preview need, all from the *same* camera frame."""

    index: int
    frame: np.ndarray  # BGR uint8 (H, W, 3): the picture that was matted
    alpha: np.ndarray  # float32 (H, W): the alpha the composite used
    composite: np.ndarray  # BGR uint8 (H, W, 3)
    #: Coarse trimap from the engine (h8, w8) uint8, classes 0 bg / 1 unknown / 2 fg; None if not available.
    trimap: np.ndarray | None = None
    #: Refined 8x8 cells (N, 2) as (y, x) in the trimap grid; None if not available.
    regions: np.ndarray | None = None
    #: (width, height) of the picture the model saw: trimap/regions coordinates refer to it.
    model_size: tuple[int, int] = (0, 0)
    #: Milliseconds per stage (matte, coarse, knn, refine, smooth, composite, sinks, total) and latency.
    timings_ms: dict[str, float] = field(default_factory=dict)
    fps: float = 0.0
    dropped: int = 0
    #: Text shown over the preview when this frame is not a real composite (matting failed, ...).
    warning: str = ""
    #: Adaptive quality this frame was matted at (coarse scale, region budget); None when adaptive quality is off.
    quality: QualitySetting | None = None


@dataclass
class PreviewFrame:
    """A ``FrameResult`` shrunk for the screen (done on the worker, so the GUI thread only paints)."""

    composite: np.ndarray  # BGR uint8, preview size
    frame: np.ndarray  # BGR uint8, preview size
    alpha: np.ndarray  # float32, preview size
    trimap: np.ndarray | None
    regions: np.ndarray | None
    model_size: tuple[int, int]
    full_size: tuple[int, int]  # (width, height) of the real output
    timings_ms: dict[str, float]
    fps: float
    dropped: int
    warning: str
    index: int
    quality: QualitySetting | None = None
