"""Matting with ONNX Runtime: the exported coarse and refinement graphs, glued by the model's own region code.

Region selection, cropping, the KD-tree neighbour search and pasting are the model's functions
(``matting_core.regions`` / ``neighbours``) run on CPU tensors, so this backend cannot drift from PyTorch's
semantics; only the two heavy stages run in ONNX Runtime. The interface matches ``MattingEngine``
(``matte``, ``matte_detailed``, settable ``use_cra`` / ``region_budget``), so callers can swap backends.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from matting_core.backends.onnx_export import ExportManifest
from matting_core.backends.ort_session import OrtOptions, OrtSession, create_session
from matting_core.engine import MatteResult, as_rgb_frame
from matting_core.neighbours import find_neighbours
from matting_core.regions import Regions, crop_patches, paste_patches, select_top_k, select_uncertain

log = logging.getLogger(__name__)


class OnnxMattingEngine:
    """Runs an export directory (see ``matting_core.backends.onnx_export``) on ONNX Runtime.

    Frames must have the exported size (the coarse graph's shapes are fixed). With a static-budget export
    ``region_budget`` is pinned to that budget.
    """

    def __init__(self, export_dir: str | Path, options: OrtOptions | None = None, use_cra: bool = True,
                 region_budget: int | None = None) -> None:
        options = options or OrtOptions()
        self.manifest = ExportManifest.load(export_dir)
        d = Path(export_dir)
        self.coarse: OrtSession = create_session(d / self.manifest.files["coarse"], options)
        self.refiners: dict[bool, OrtSession] = {
            True: create_session(d / self.manifest.files["refine_cra"], options),
            False: create_session(d / self.manifest.files["refine_nocra"], options),
        }
        self.use_cra = use_cra
        self._budget: int | None = None
        self.region_budget = region_budget if self.manifest.budget is None else self.manifest.budget
        self.knn_k = self.manifest.knn_k
        self.region_size = int(self.manifest.model_config.get("region_size", 8))
        self.is_trained = True  # what the weights were is the exporter's business; the manifest records it

    @property
    def provider(self) -> str:
        return self.coarse.short_provider

    @property
    def region_budget(self) -> int | None:
        return self._budget

    @region_budget.setter
    def region_budget(self, value: int | None) -> None:
        fixed = self.manifest.budget
        if fixed is not None and value != fixed:
            raise ValueError(f"this export has a static region budget of {fixed}; re-export to change it")
        self._budget = value

    def matte_detailed(self, frame: np.ndarray, channels: str = "rgb") -> MatteResult:
        """Same contract as ``MattingEngine.matte_detailed``."""
        start = time.perf_counter()
        rgb = as_rgb_frame(frame, channels)
        h, w = rgb.shape[:2]
        if (w, h) != (self.manifest.width, self.manifest.height):
            raise ValueError(f"frame is {w}x{h} but this ONNX export is for "
                             f"{self.manifest.width}x{self.manifest.height}: export that size or resize the frame")
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255)
        alpha_logits, trimap_logits, up = self.coarse.run({"image": image})
        trimap_t = torch.from_numpy(trimap_logits)
        budget = self.region_budget
        regions: Regions = select_uncertain(trimap_t) if budget is None else select_top_k(trimap_t, budget)
        up_t = torch.from_numpy(up)
        hp, wp = up.shape[-2:]
        if (hp, wp) != (h, w):  # the model replicate-pads to a multiple of 16
            image_t = torch.nn.functional.pad(torch.from_numpy(image), (0, wp - w, 0, hp - h), mode="replicate")
        else:
            image_t = torch.from_numpy(image)
        patches = crop_patches(torch.cat([image_t, up_t], dim=1), regions, self.region_size)
        t_coarse = time.perf_counter()
        t_knn = t_coarse
        if len(regions):
            feed = {"patches": patches.numpy()}
            if self.use_cra:
                nb = find_neighbours(regions.coords, regions.batch, self.knn_k, "kdtree")
                t_knn = time.perf_counter()
                feed.update(coords=regions.coords.numpy(), neighbour_index=nb.index.numpy(),
                            neighbour_valid=nb.valid.numpy())
            refined = torch.from_numpy(self.refiners[self.use_cra].run(feed)[0])
            alpha = paste_patches(up_t, refined, regions, self.region_size)
        else:
            alpha = up_t
        t_refine = time.perf_counter()
        alpha_np = alpha[0, 0, :h, :w].numpy()
        coarse_alpha = 1.0 / (1.0 + np.exp(-alpha_logits[0, 0]))
        result = MatteResult(
            alpha=np.ascontiguousarray(alpha_np, dtype=np.float32),
            coarse_alpha=coarse_alpha.astype(np.float32),
            trimap=trimap_logits[0].argmax(0).astype(np.uint8),
            regions=regions.coords.numpy().astype(np.int32),
            timings_ms={"coarse": (t_coarse - start) * 1000.0, "knn": (t_knn - t_coarse) * 1000.0,
                        "refine": (t_refine - t_knn) * 1000.0},
        )
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        return result

    def matte(self, frame: np.ndarray, channels: str = "rgb") -> np.ndarray:
        return self.matte_detailed(frame, channels).alpha
