"""Build the matting engine the settings ask for, falling back instead of failing.

Every fallback comes with a message for the user: a missing or corrupt model file falls back to the default
model, a GPU that is not there falls back to the CPU, a backend this build lacks falls back to PyTorch. The
app then starts anyway and says what it is really running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineRequest:
    """What the user asked for (from ``AppSettings`` or the command line)."""

    model_path: str = ""
    device: str = "cpu"
    backend: str = "torch"
    use_cra: bool = True
    threads: int | None = None
    #: Folder written by ``mattecam export-onnx`` (used when ``backend`` is "onnxruntime").
    onnx_dir: str = ""


@dataclass
class LoadedEngine:
    engine: Any
    #: Sentences for the user: fallbacks taken, untrained weights, ...
    messages: list[str]
    #: What actually runs, e.g. "cpu, torch, models/default.safetensors".
    description: str


class FixedSizeEngine:
    """Adapts an engine that only takes one frame size (an ONNX export) to any frame: resize in, alpha out.

    The trimap and regions refer to the export size, which ``last_input_size`` says, so ``FrameProcessor``
    reports it as ``FrameResult.model_size``. ``use_cra`` and ``region_budget`` are the wrapped engine's (a
    static-budget export raises ``ValueError`` for any other budget). ``fixed_input`` tells adaptive quality
    that shrinking frames before this adapter saves no time: only the region budget can buy speed here.
    """

    fixed_input = True

    def __init__(self, engine: Any, width: int, height: int) -> None:
        self.inner = engine
        self.size = (width, height)
        self.last_input_size = self.size
        self.is_trained = getattr(engine, "is_trained", True)

    @property
    def use_cra(self) -> bool:
        return self.inner.use_cra

    @use_cra.setter
    def use_cra(self, value: bool) -> None:
        self.inner.use_cra = value

    @property
    def region_budget(self) -> int | None:
        return self.inner.region_budget

    @region_budget.setter
    def region_budget(self, value: int | None) -> None:
        self.inner.region_budget = value

    def matte_detailed(self, frame: Any, channels: str = "rgb") -> Any:
        import cv2

        h, w = frame.shape[:2]
        resized = frame if (w, h) == self.size else cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        result = self.inner.matte_detailed(resized, channels)
        if (w, h) != self.size:
            result.alpha = cv2.resize(result.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return result

    def matte(self, frame: Any, channels: str = "rgb") -> Any:
        return self.matte_detailed(frame, channels).alpha


def _load_onnx(request: EngineRequest, device: str, messages: list[str]) -> LoadedEngine | None:
    """The ONNX Runtime engine, or None (with a message) when it cannot run here."""
    if not request.onnx_dir:
        messages.append("ONNX Runtime needs an exported model folder (mattecam export-onnx, then set it in the "
                        "settings): using PyTorch.")
        return None
    try:
        from matting_core.backends.onnx_engine import OnnxMattingEngine
        from matting_core.backends.ort_session import OrtOptions

        inner = OnnxMattingEngine(request.onnx_dir, OrtOptions(providers="cuda" if device == "cuda" else "cpu",
                                                               threads=request.threads),
                                  use_cra=request.use_cra)
    except Exception as exc:  # missing package, bad export, provider failure: all fall back to PyTorch
        log.warning("ONNX Runtime engine failed", exc_info=True)
        messages.append(f"ONNX Runtime could not load {request.onnx_dir} ({exc}): using PyTorch.")
        return None
    manifest = inner.manifest
    engine = FixedSizeEngine(inner, manifest.width, manifest.height)
    description = (f"onnxruntime ({inner.provider}), {request.onnx_dir}, "
                   f"exported for {manifest.width}x{manifest.height}")
    return LoadedEngine(engine, messages, description)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def load_engine(request: EngineRequest) -> LoadedEngine:
    """Load ``request``'s engine, or the closest thing that works, and say what differs."""
    from matting_core.engine import CheckpointError, EngineOptions, MattingEngine

    messages: list[str] = []
    device = request.device
    if device.startswith("cuda") and not cuda_available():
        messages.append("GPU requested but no CUDA GPU is available: running on the CPU.")
        device = "cpu"

    if request.backend == "onnxruntime":
        loaded = _load_onnx(request, device, messages)
        if loaded is not None:
            for message in messages:
                log.warning(message)
            return loaded
    elif request.backend != "torch":
        messages.append(f"Unknown backend {request.backend!r}: using PyTorch.")
    options = EngineOptions(device=device, use_cra=request.use_cra, threads=request.threads)

    path: Path | None = Path(request.model_path).expanduser() if request.model_path else None
    if path is not None and not path.is_file():
        messages.append(f"Model file {path} not found: using the default model.")
        path = None
    try:
        engine = MattingEngine.load(path, options)
    except (CheckpointError, OSError, ValueError, RuntimeError) as exc:
        if path is None:
            raise
        messages.append(f"Model file {path.name} cannot be loaded ({exc}): using the default model.")
        path = None
        engine = MattingEngine.load(None, options)
    except Exception as exc:
        if device == "cpu":
            raise
        messages.append(f"Could not start the model on {device} ({exc}): running on the CPU.")
        engine = MattingEngine.load(path, EngineOptions(device="cpu", use_cra=request.use_cra,
                                                        threads=request.threads))
    for message in messages:  # the engine logs its own notes; log only ours
        log.warning(message)
    for note in getattr(engine, "notes", []):
        if note not in messages:
            messages.append(note)
    weights = getattr(engine, "weights_path", None)
    description = f"{getattr(engine, 'device', device)}, torch, " + (
        str(weights) if weights else "random weights (untrained)"
    )
    return LoadedEngine(engine, messages, description)
