"""What an ONNX export directory holds (``manifest.json``); torch-free so the ONNX Runtime engine can read it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"
COARSE_FILE = "coarse.onnx"
REFINE_FILES = {True: "refine_cra.onnx", False: "refine_nocra.onnx"}
#: 2: the coarse graph takes the uint8 (1, H, W, 3) frame ("frame"); 1 took a float (1, 3, H, W) "image".
FORMAT = 2


@dataclass(frozen=True)
class ExportManifest:
    """Sizes, budget, model config and the measured ONNX-vs-PyTorch agreement of one export directory."""

    width: int
    height: int
    budget: int | None
    knn_k: int
    model_config: dict
    files: dict[str, str]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    torch_version: str = ""
    opset: int = 0
    trained: bool = True  # False when exported from random weights (no trained model was found)
    format: int = 1  # manifests written before the field existed are format 1

    def save(self, directory: Path) -> Path:
        path = directory / MANIFEST
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ExportManifest:
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{directory} holds no ONNX export ({MANIFEST} missing): run `mattecam export-onnx`")
        data = json.loads(path.read_text())
        known = set(cls.__dataclass_fields__)
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        if manifest.format != FORMAT:
            raise ValueError(f"{directory} is an ONNX export of format {manifest.format}; this version reads "
                             f"format {FORMAT}: export it again with `mattecam export-onnx`")
        return manifest
