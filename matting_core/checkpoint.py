"""Safe checkpoint I/O: safetensors weights with the architecture embedded, so a file rebuilds its own model.

The ModelConfig JSON goes into the safetensors header metadata (key ``mattecam.model_config``) and into a
sidecar ``<stem>.json`` for people to read. Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from matting_core.config import ConfigError, ModelConfig
from matting_core.model import PortraitMattingModel

CONFIG_KEY = "mattecam.model_config"
FORMAT_KEY = "mattecam.format"
FORMAT_VERSION = "1"
#: The shipped default model (repository root / models).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.safetensors"


class CheckpointError(RuntimeError):
    """A weights file that is missing, corrupt, or not a mattecam model; the message names the file."""


def save_checkpoint(
    model: PortraitMattingModel, path: str | Path, dtype: torch.dtype | None = None, extra: dict | None = None
) -> Path:
    """Write ``path`` (.safetensors) + ``path.with_suffix('.json')``. ``dtype`` e.g. torch.float16 to halve size.

    ``extra`` is free-form JSON-serialisable provenance (training step, data, ...) stored in the metadata.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.module if hasattr(model, "module") else model  # unwrap DDP
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point() and "running_" not in k:
            v = v.to(dtype)
        state[k] = v.contiguous()
    meta = {CONFIG_KEY: model.cfg.to_json(), FORMAT_KEY: FORMAT_VERSION}
    if extra:
        meta["mattecam.extra"] = json.dumps(extra)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a truncated checkpoint behind
    path.with_suffix(".json").write_text(model.cfg.to_json() + "\n")
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata of ``path`` (reads the header only, not the weights)."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_config(path: str | Path, metadata: dict[str, str] | None = None) -> ModelConfig:
    """The architecture a checkpoint was saved with (header metadata, else the sidecar JSON).

    ``metadata``: the header already read with :func:`read_metadata`, so callers that need both the
    config and the provenance open the file once.
    """
    path = Path(path)
    meta = read_metadata(path) if metadata is None else metadata
    text = meta.get(CONFIG_KEY)
    if text is None:
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise CheckpointError(f"{path}: no model config in its metadata and no {sidecar.name} beside it")
        text = sidecar.read_text()
    try:
        return ModelConfig.from_json(text)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def read_extra(path: str | Path, metadata: dict[str, str] | None = None) -> dict:
    """The provenance a checkpoint was saved with (``save_checkpoint(extra=...)``), or {} if none/unreadable."""
    try:
        meta = read_metadata(path) if metadata is None else metadata
        return json.loads(meta.get("mattecam.extra", "{}"))
    except (CheckpointError, ValueError):
        return {}


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", metadata: dict[str, str] | None = None
) -> tuple[PortraitMattingModel, ModelConfig]:
    """Rebuild the model a checkpoint describes and load its weights (fp32, eval mode) onto ``device``.

    ``metadata``: the header already read with :func:`read_metadata` (see :func:`read_config`).
    """
    path = Path(path)
    cfg = read_config(path, metadata)  # raises "model file not found" for a missing file (read_metadata)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt weights ({exc})") from exc
    model = PortraitMattingModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(f"{path}: weights do not match the model its config describes ({detail})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval(), cfg
