"""The Robust Video Matting peer (RVM, MobileNetV3), run through the same ONNX Runtime factory as our model.

Every benchmark figure is shown next to the peer's on the same runtime and device, so the file lives
outside the repository (it is not ours to ship) and is found with :func:`default_peer_path`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matting_core.backends.ort_session import OrtOptions, OrtSession, create_session

#: RVM's recommended ``downsample_ratio`` per frame height (its README: 0.375 at 720p, 0.25 at 1080p,
#: 0.125 at 4K); other sizes use the same rule, "the low-resolution pass sees a long side of ~480 px".
RVM_RATIOS: dict[int, float] = {720: 0.375, 1080: 0.25, 2160: 0.125}


def default_peer_path(repo_root: str | Path | None = None) -> Path | None:
    """``../shared/peers/rvm.onnx`` next to the repository root, if it exists there."""
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    path = (root / ".." / "shared" / "peers" / "rvm.onnx").resolve()
    return path if path.is_file() else None


def rvm_downsample_ratio(height: int, width: int) -> float:
    """The recommended ratio for a frame of ``height`` x ``width`` (landscape HD/FHD/4K use RVM's table)."""
    short = min(height, width)
    if short in RVM_RATIOS and max(height, width) * 9 == short * 16:
        return RVM_RATIOS[short]
    long_side = max(height, width)
    return 1.0 if long_side <= 512 else 480.0 / long_side


@dataclass(frozen=True)
class PeerResult:
    alpha: np.ndarray  # (H, W) float32 in [0, 1]
    model_ms: float


class RvmPeer:
    """Stateful RVM runner: feeds its recurrent state back frame to frame, as RVM is meant to run on video."""

    def __init__(self, path: str | Path, options: OrtOptions | None = None, downsample_ratio: float | None = None):
        self.ort: OrtSession = create_session(path, options or OrtOptions())
        names = set(self.ort.input_names)
        needed = {"src", "downsample_ratio:0", "r1i:0", "r2i:0", "r3i:0", "r4i:0"}
        if not needed <= names:
            raise ValueError(f"{path} does not look like the RVM peer (inputs {sorted(names)})")
        self.fixed_ratio = downsample_ratio
        self.ratio: float | None = None
        self._state: list[np.ndarray] | None = None

    @property
    def provider(self) -> str:
        return self.ort.short_provider

    def reset(self) -> None:
        """Forget the recurrent state (a new clip starts)."""
        self._state = None

    def __call__(self, rgb: np.ndarray) -> PeerResult:
        """``rgb``: (H, W, 3) uint8 RGB frame -> its alpha and the time the model call took."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        self.ratio = self.fixed_ratio if self.fixed_ratio is not None else rvm_downsample_ratio(h, w)
        if self._state is None:
            self._state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        feed = {"src": (rgb.astype(np.float32) * (1.0 / 255.0))[None],
                "downsample_ratio:0": np.array([self.ratio], np.float32)}
        feed.update({f"r{i + 1}i:0": s for i, s in enumerate(self._state)})
        t0 = time.perf_counter()
        out = dict(zip(self.ort.output_names, self.ort.run(feed)))
        ms = (time.perf_counter() - t0) * 1000.0
        self._state = [out["r1o"], out["r2o"], out["r3o"], out["r4o"]]
        return PeerResult(alpha=out["pha"][0, :, :, 0], model_ms=ms)
