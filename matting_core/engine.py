"""MattingEngine: one uint8 frame in, one float alpha out; hides devices, precision, weights and tensors.

This is the only place the app touches the model. It picks the device (falling back to the CPU with a
message when CUDA is asked for but absent), loads weights safely, validates frames, and times each stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from matting_core.checkpoint import DEFAULT_MODEL_PATH, CheckpointError, load_checkpoint, read_extra, read_metadata
from matting_core.config import CLEAR_BACKGROUND_BELOW, DROP_ISLANDS_BELOW, FILL_FOREGROUND_AT, ModelConfig
from matting_core.model import MattingOutput, PortraitMattingModel

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

UNTRAINED_WARNING = (
    "NO TRAINED MODEL: {path} was not found, so the engine runs with RANDOM weights and its mattes are "
    "meaningless. Pass --model PATH or put a trained checkpoint there."
)


@dataclass(frozen=True)
class EngineOptions:
    """How to run the model. ``region_budget`` None = refine every uncertain region (the paper's rule).

    ``coarse_scale``: the coarse network sees the frame scaled by this (refinement stays at full
    resolution). None = automatic: frames larger than the resolution the checkpoint was trained at are
    scaled to it (a network trained on 512 px frames finds people best at that scale: held-out 720p
    composites went from IoU 0.32 to 0.66 with the default model), otherwise 1.0, the paper's behaviour.
    ``clear_background``: final alpha below this is set to 0 in cells the trimap calls background, so the
    old room does not show through faintly (``regions.clear_faint_background``; 0 = the paper's plain paste).
    ``fill_foreground``: final alpha in cells the trimap calls foreground is divided by this and clipped to 1,
    so the new background does not show through a face (``regions.fill_definite_foreground``; 1 = off).
    ``drop_islands``: patches of alpha apart from the largest one whose share of solid cells is under this are
    set to 0, so a door or a plant the coarse network half-believes is a person disappears
    (``regions.drop_unsure_islands``; 0 = off).
    """

    device: str = "cpu"
    precision: Precision = "fp32"
    use_cra: bool = True
    region_budget: int | None = None
    threads: int | None = None
    coarse_scale: float | None = None
    clear_background: float = CLEAR_BACKGROUND_BELOW
    fill_foreground: float = FILL_FOREGROUND_AT
    drop_islands: float = DROP_ISLANDS_BELOW

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, not {self.precision!r}")
        if self.region_budget is not None and self.region_budget < 1:
            raise ValueError("region_budget must be a positive number of regions (or None for all)")
        if self.coarse_scale is not None and not 0.1 <= self.coarse_scale <= 1.0:
            raise ValueError("coarse_scale must be in [0.1, 1] (or None for automatic)")
        if not 0.0 <= self.clear_background < 1.0:
            raise ValueError("clear_background must be in [0, 1) (0 = off)")
        if not 0.0 < self.fill_foreground <= 1.0:
            raise ValueError("fill_foreground must be in (0, 1] (1 = off)")
        if not 0.0 <= self.drop_islands <= 1.0:
            raise ValueError("drop_islands must be in [0, 1] (0 = off)")


@dataclass
class MatteResult:
    """alpha (H, W) float32 in [0, 1]; coarse_alpha / trimap (h8, w8) at 1/8 (trimap: 0 bg, 1 unknown, 2 fg);
    regions (N, 2) int (y, x) refined cells; timings_ms per stage (coarse, knn, refine, total)."""

    alpha: np.ndarray
    coarse_alpha: np.ndarray
    trimap: np.ndarray
    regions: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class _Clock:
    def __init__(self, sync: bool) -> None:
        self.sync = sync
        self.t = time.perf_counter()
        self.ms: dict[str, float] = {"coarse": 0.0, "knn": 0.0, "refine": 0.0}

    def mark(self, stage: str) -> None:
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self.t) * 1000.0
        self.t = now


def resolve_device(requested: str) -> tuple[torch.device, str | None]:
    """The device to use and, when it differs from the request, a message saying why."""
    if requested.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu"), f"GPU ({requested}) requested but CUDA is not available: running on the CPU"
    try:
        return torch.device(requested), None
    except RuntimeError as exc:
        raise ValueError(f"unknown device {requested!r} (use cpu or cuda)") from exc


def as_rgb_frame(frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
    """Validate a frame and return it as (H, W, 3) uint8 RGB. Accepts gray, RGB/BGR, RGBA/BGRA, uint8 or [0,1] float."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array, not {type(frame).__name__}")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"frame must be HxW, HxWx3 or HxWx4, got shape {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"frame {frame.shape[1]}x{frame.shape[0]} is too small (at least 8x8 pixels)")
    frame = frame[:, :, :3]
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating):
            frame = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        else:
            raise ValueError(f"frame dtype must be uint8 or float in [0, 1], got {frame.dtype}")
    if channels == "bgr":
        frame = frame[:, :, ::-1]
    elif channels != "rgb":
        raise ValueError(f"channels must be 'rgb' or 'bgr', not {channels!r}")
    return np.ascontiguousarray(frame)


class MattingEngine:
    """Runs a :class:`PortraitMattingModel` on numpy frames. ``use_cra`` / ``region_budget`` can change any time;
    they apply from the next frame on."""

    def __init__(
        self,
        model: PortraitMattingModel,
        options: EngineOptions = EngineOptions(),
        weights_path: Path | None = None,
        is_trained: bool = True,
        train_size: int | None = None,
    ) -> None:
        self.device, note = resolve_device(options.device)
        self.notes: list[str] = [note] if note else []
        for n in self.notes:
            log.warning(n)
        self.precision: Precision = options.precision
        if self.device.type == "cpu" and self.precision != "fp32":
            self.notes.append(f"{self.precision} runs only on the GPU: using fp32 on the CPU")
            log.warning(self.notes[-1])
            self.precision = "fp32"
        if options.threads:
            torch.set_num_threads(options.threads)
        self.model = model.to(self.device).eval()
        self.cfg: ModelConfig = model.cfg
        self.use_cra = options.use_cra
        self.region_budget = options.region_budget
        self.weights_path = weights_path
        self.is_trained = is_trained
        self.coarse_scale = options.coarse_scale
        self.clear_background = options.clear_background
        self.fill_foreground = options.fill_foreground
        self.drop_islands = options.drop_islands
        #: Frame size (short side) the checkpoint was trained at, if it records one: the automatic coarse scale.
        self.train_size = train_size

    @classmethod
    def load(cls, path: str | Path | None = None, options: EngineOptions = EngineOptions()) -> MattingEngine:
        """Load a checkpoint (``path``), or the default model; with neither, random weights and a loud warning.

        Raises :class:`CheckpointError` (naming the file) for an explicit path that is missing or corrupt.
        """
        if path is None and DEFAULT_MODEL_PATH.is_file():
            path = DEFAULT_MODEL_PATH
        if path is not None:
            path = Path(path)
            meta = read_metadata(path)  # one header read for config + provenance; names a missing file
            model, _ = load_checkpoint(path, metadata=meta)
            size = read_extra(path, meta).get("size")
            return cls(model, options, path, is_trained=True, train_size=int(size) if size else None)
        log.warning(UNTRAINED_WARNING.format(path=DEFAULT_MODEL_PATH))
        torch.manual_seed(0)
        engine = cls(PortraitMattingModel(ModelConfig()), options, None, is_trained=False)
        engine.notes.append(UNTRAINED_WARNING.format(path=DEFAULT_MODEL_PATH))
        return engine

    def to_tensor(self, frame: np.ndarray, channels: str = "rgb") -> torch.Tensor:
        """(H, W, 3) frame -> (1, 3, H, W) float RGB in [0, 1] on the engine's device."""
        rgb = as_rgb_frame(frame, channels)
        t = torch.from_numpy(rgb).to(self.device, non_blocking=True)
        return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)

    def effective_coarse_scale(self, height: int, width: int) -> float:
        """The coarse input scale used for a frame of this size (see ``EngineOptions.coarse_scale``)."""
        if self.coarse_scale is not None:
            return float(self.coarse_scale)
        if not self.train_size:
            return 1.0
        return max(0.1, min(1.0, self.train_size / min(height, width)))

    @torch.inference_mode()
    def run(self, image: torch.Tensor, clock: _Clock | None = None) -> MattingOutput:
        """Model forward on a (B, 3, H, W) tensor with the engine's current settings and precision."""
        dtype = _DTYPES.get(self.precision)
        scale = self.effective_coarse_scale(*image.shape[-2:])
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            return self.model(
                image, use_cra=self.use_cra, region_budget=self.region_budget, clock=clock, coarse_scale=scale,
                clear_background=self.clear_background, fill_foreground=self.fill_foreground,
                drop_islands=self.drop_islands,
            )

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> MatteResult:
        """Alpha plus the intermediate coarse alpha, trimap, refined regions and per-stage timings."""
        start = time.perf_counter()
        image = self.to_tensor(frame, channels)
        clock = _Clock(sync=self.device.type == "cuda")
        out = self.run(image, clock)
        result = MatteResult(
            alpha=out.alpha[0, 0].float().cpu().numpy(),
            coarse_alpha=torch.sigmoid(out.coarse_alpha_logits[0, 0].float()).cpu().numpy(),
            trimap=out.trimap_logits[0].argmax(0).to(torch.uint8).cpu().numpy(),
            regions=out.regions.coords.cpu().numpy().astype(np.int32),
            timings_ms=dict(clock.ms),
        )
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return result

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
        """Alpha (H, W) float32 in [0, 1] for an (H, W, 3) frame of any size.

        No per-stage clock here: on a GPU its synchronisations would slow every frame down.
        """
        return self.run(self.to_tensor(frame, channels)).alpha[0, 0].float().cpu().numpy()


__all__ = ["CheckpointError", "EngineOptions", "MatteResult", "MattingEngine", "as_rgb_frame", "resolve_device"]
