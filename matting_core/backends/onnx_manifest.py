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
    #: Coarse input scale (see ``PortraitMattingModel._coarse``); exports made before it existed are 1.0.
    #: Below 1 the coarse graph takes the replicate-padded frame resized to ``coarse_width`` x
    #: ``coarse_height`` (uint8, the engine resizes it) and returns only the two logits, which the engine
    #: crops to ``coarse_cells`` (rows, cols) and resamples to the padded frame's 1/8 grid.
    coarse_scale: float = 1.0
    coarse_width: int = 0
    coarse_height: int = 0
    coarse_cells: tuple[int, int] = (0, 0)
    #: The frame replicate-padded to the model's multiple of 16 (and minimum side), as ``model.pad_frame``.
    padded_width: int = 0
    padded_height: int = 0

    @property
    def scaled(self) -> bool:
        """True when the coarse graph runs on a resized frame (the engine resizes and regrids around it)."""
        return self.coarse_scale < 1.0

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
        fields = {k: v for k, v in data.items() if k in known}
        if "coarse_cells" in fields:
            fields["coarse_cells"] = tuple(fields["coarse_cells"])
        manifest = cls(**fields)
        if manifest.format != FORMAT:
            raise ValueError(f"{directory} is an ONNX export of format {manifest.format}; this version reads "
                             f"format {FORMAT}: export it again with `mattecam export-onnx`")
        if manifest.scaled and not (manifest.coarse_width and manifest.coarse_height and all(manifest.coarse_cells)
                                    and manifest.padded_width and manifest.padded_height):
            raise ValueError(f"{path} has coarse scale {manifest.coarse_scale:g} but not the coarse sizes it "
                             "needs: export it again with `mattecam export-onnx`")
        return manifest
