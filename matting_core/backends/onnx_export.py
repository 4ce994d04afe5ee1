"""Export the model's two heavy stages to ONNX: the coarse pass and the refinement (with and without CRA).

Why two graphs and not one: region selection and the KD-tree neighbour search (the paper's CPU path) are
cheap, data-dependent steps that stay in Python between the graphs, while the two graphs hold all the
arithmetic. The coarse graph has the frame size baked in (Swin's window masks are constants of the size);
the refinement graph takes any number of regions, or exactly ``budget`` of them for the static-budget variant
that TensorRT and other static-shape runtimes want.

An export directory holds ``coarse.onnx``, ``refine_cra.onnx``, ``refine_nocra.onnx`` and ``manifest.json``
(sizes, budget, coarse scale, model config, and the max |ONNX - PyTorch| measured right after the export).

Coarse input scale ``s`` < 1 (``PortraitMattingModel.forward(coarse_scale=s)``): the coarse graph is exported
for the replicate-padded frame already resized by ``s`` (uint8, Hp*s x Wp*s each rounded to whole 16 px
patches: ``model.scaled_size``) and returns only the two 1/8 logits. The resize stays outside the graph
so the graph's input is the small uint8 frame; the engine does it with ``cv2.resize(INTER_AREA)``, a box
filter, where the model uses torch's antialiased bilinear (triangle) filter: that is the one place the ONNX
path differs from PyTorch (bounded in ``tests/matting_core/test_onnx.py``). The crop and the bilinear regrid
of the logits to the full grid are done in the engine and match torch to ~1e-5.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from matting_core.backends.onnx_manifest import COARSE_FILE, FORMAT, REFINE_FILES, ExportManifest
from matting_core.model import PortraitMattingModel, pad_frame, scaled_size

log = logging.getLogger(__name__)

OPSET = 18


class CoarseStage(nn.Module):
    """frame (1, H, W, 3) uint8 RGB -> alpha_logits (1, 1, h8, w8), trimap_logits (1, 3, h8, w8),
    upsampled (1, 1, Hp, Wp): the sigmoid coarse alpha bilinearly upsampled to the 16-padded frame,
    i.e. the refiner's input and paste base. ``PortraitMattingModel.coarse_stage`` on a uint8 frame.
    """

    def __init__(self, model: PortraitMattingModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # uint8 in: the caller never builds the 4-byte-per-channel copy of a 4K frame (100 MB)
        image = frame.permute(0, 3, 1, 2).float() / 255.0
        _, coarse, up = self.model.coarse_stage(image)
        return coarse.alpha_logits, coarse.trimap_logits, up


class CoarseLogits(nn.Module):
    """frame (1, h, w, 3) uint8 RGB (the frame already scaled for the coarse pass) -> alpha_logits
    (1, 1, h8, w8), trimap_logits (1, 3, h8, w8) of the 16-padded scaled frame: the coarse graph of a scaled
    export; the crop, regrid and upsampling happen in the engine at full resolution."""

    def __init__(self, model: PortraitMattingModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = frame.permute(0, 3, 1, 2).float() / 255.0
        padded, _, _ = pad_frame(image, self.model.cfg.patch_size)
        coarse = self.model.coarse(padded)
        return coarse.alpha_logits, coarse.trimap_logits


@dataclass(frozen=True)
class CoarseGeometry:
    """Sizes of the coarse pass for one frame size and scale, computed exactly as ``PortraitMattingModel``.

    padded: the frame replicate-padded by ``pad_frame``; size: the padded frame scaled by ``scale``, each side
    rounded to whole patches (``model.scaled_size``); cells: the rows/cols of the scaled frame's 1/8 logits
    kept before regridding (any ``MIN_SIDE`` padding cut off).
    """

    scale: float
    padded: tuple[int, int]  # (height, width)
    size: tuple[int, int]  # (height, width)
    cells: tuple[int, int]  # (rows, cols)


def coarse_geometry(model: PortraitMattingModel, width: int, height: int, scale: float) -> CoarseGeometry:
    """The coarse pass's sizes for ``width`` x ``height`` frames at coarse input ``scale`` (1 = full frame)."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"coarse scale must be in (0, 1], not {scale}")
    hp, wp = pad_frame(torch.empty(1, 1, height, width), model.cfg.patch_size)[0].shape[-2:]
    if scale >= 1.0:
        return CoarseGeometry(1.0, (hp, wp), (hp, wp), (hp // model.cfg.region_size, wp // model.cfg.region_size))
    small = scaled_size(hp, wp, scale, model.cfg.patch_size)
    r = model.cfg.region_size
    return CoarseGeometry(float(scale), (hp, wp), small, (small[0] // r, small[1] // r))


class RefineCra(nn.Module):
    """patches (N, 4, 8, 8), coords (N, 2) int64, neighbour_index (N, k) int64, neighbour_valid (N, k) bool
    -> refined (N, 1, 8, 8)."""

    def __init__(self, model: PortraitMattingModel) -> None:
        super().__init__()
        self.refiner = model.refiner

    def forward(self, patches: torch.Tensor, coords: torch.Tensor, neighbour_index: torch.Tensor,
                neighbour_valid: torch.Tensor) -> torch.Tensor:
        return self.refiner(patches, coords, neighbour_index, neighbour_valid)


class RefineNoCra(nn.Module):
    """patches (N, 4, 8, 8) -> refined (N, 1, 8, 8): the paper's "w/o CRA" refinement."""

    def __init__(self, model: PortraitMattingModel) -> None:
        super().__init__()
        self.refiner = model.refiner

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.refiner(patches)


def refine_stage(model: PortraitMattingModel, use_cra: bool) -> nn.Module:
    return RefineCra(model) if use_cra else RefineNoCra(model)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]] | None) -> None:
    """TorchScript-free export (``dynamo=True``): the legacy tracer mis-infers the masked Swin's padded shapes."""
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim("regions", min=1, max=1 << 20)
        dynamic_shapes = tuple({0: dim} if name in dynamic else None for name in inputs)
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter(), _fresh_window_masks():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, input_names=inputs,
                                    output_names=outputs, dynamic_shapes=dynamic_shapes, verbose=False)
        program.save(str(path), external_data=False)


@contextlib.contextmanager
def _fresh_window_masks() -> Iterator[None]:
    """Empty ``swin_masked``'s window-mask caches before and after an export.

    torch.export traces with fake tensors; a mask first built during the trace would be cached as a fake
    tensor and poison every later eager call of the same size (".numpy() is not supported for tensor
    subclasses"), and a mask cached earlier would be baked in as a real constant anyway.
    """
    from matting_core import swin_masked

    caches = [f.cache_clear for f in vars(swin_masked).values() if callable(getattr(f, "cache_clear", None))]

    def clear() -> None:
        for c in caches:
            c()

    clear()
    try:
        yield
    finally:
        clear()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The ONNX exporter's helpers log every optimisation pass at INFO; keep the user's log readable."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def example_refine_inputs(n: int, k: int, grid: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random but well-formed refinement inputs: n distinct cells of a grid with their k nearest neighbours."""
    from matting_core.neighbours import knn_kdtree

    g = torch.Generator().manual_seed(seed)
    h, w = grid
    flat = torch.randperm(h * w, generator=g)[:n].sort().values
    coords = torch.stack([flat // w, flat % w], dim=1)
    nb = knn_kdtree(coords, torch.zeros(n, dtype=torch.long), k)
    patches = torch.rand(n, 4, 8, 8, generator=g)
    return patches, coords, nb.index, nb.valid


def export_onnx(model: PortraitMattingModel, out_dir: str | Path, width: int, height: int,
                budget: int | None = None, check: bool = True, coarse_from: str | Path | None = None,
                trained: bool = True, coarse_scale: float = 1.0) -> ExportManifest:
    """Write the coarse graph for ``width`` x ``height`` frames and both refinement graphs to ``out_dir``.

    ``coarse_scale`` < 1 exports the coarse graph for the frame scaled by it (see the module docstring);
    1.0 runs the coarse pass on the full frame (the paper's setting).

    ``budget`` None exports the refinement with a dynamic region count; an int fixes it (static shapes).
    ``trained`` is recorded in the manifest (False: random weights, the mattes mean nothing).
    ``coarse_from``: an earlier export directory of the same model and size whose coarse graph is copied
    instead of re-exported (changing the budget only changes the refinement graphs).
    With ``check`` each graph is run once in ONNX Runtime (CPU) against PyTorch; the max |diff| lands in the
    manifest and the log.
    """
    if width < 16 or height < 16:
        raise ValueError(f"frame {width}x{height} is too small to export")
    if budget is not None and budget < 1:
        raise ValueError("budget must be >= 1 regions (or None for a dynamic count)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    k = model.cfg.knn_k
    t0 = time.perf_counter()
    geo = coarse_geometry(model, width, height, coarse_scale)
    scaled = geo.scale < 1.0
    in_h, in_w = geo.size if scaled else (height, width)
    frame = torch.randint(0, 256, (1, in_h, in_w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if coarse_from is not None:
        previous = ExportManifest.load(coarse_from)
        if (previous.width, previous.height) != (width, height):
            raise ValueError(f"{coarse_from} is a {previous.width}x{previous.height} export, not {width}x{height}")
        if previous.coarse_scale != geo.scale:
            raise ValueError(f"{coarse_from} has coarse scale {previous.coarse_scale:g}, not {geo.scale:g} "
                             "(see --coarse-scale)")
        shutil.copyfile(Path(coarse_from) / previous.files["coarse"], out / COARSE_FILE)
    elif scaled:
        _export(CoarseLogits(model), (frame,), out / COARSE_FILE, ["frame"], ["alpha_logits", "trimap_logits"], None)
    else:
        _export(CoarseStage(model), (frame,), out / COARSE_FILE, ["frame"],
                ["alpha_logits", "trimap_logits", "upsampled"], None)
    grid = (geo.padded[0] // model.cfg.region_size, geo.padded[1] // model.cfg.region_size)
    n = budget if budget is not None else min(64, grid[0] * grid[1])
    ex = example_refine_inputs(n, k, grid)
    dyn = None if budget is not None else {"patches": {0: "regions"}, "coords": {0: "regions"},
                                           "neighbour_index": {0: "regions"}, "neighbour_valid": {0: "regions"}}
    _export(RefineCra(model), ex, out / REFINE_FILES[True],
            ["patches", "coords", "neighbour_index", "neighbour_valid"], ["refined"], dyn)
    _export(RefineNoCra(model), ex[:1], out / REFINE_FILES[False], ["patches"], ["refined"],
            None if dyn is None else {"patches": {0: "regions"}})
    log.info("exported %dx%d (budget %s, coarse scale %g) to %s in %.1f s", width, height, budget, geo.scale,
             out, time.perf_counter() - t0)
    manifest = ExportManifest(width=width, height=height, budget=budget, knn_k=k,
                              model_config=model.cfg.to_dict(), torch_version=torch.__version__, opset=OPSET,
                              trained=trained, format=FORMAT,
                              files={"coarse": COARSE_FILE, "refine_cra": REFINE_FILES[True],
                                     "refine_nocra": REFINE_FILES[False]},
                              coarse_scale=geo.scale, coarse_width=geo.size[1], coarse_height=geo.size[0],
                              coarse_cells=geo.cells, padded_width=geo.padded[1], padded_height=geo.padded[0])
    if check:
        manifest = ExportManifest(**{**asdict(manifest), "max_abs_diff": check_export(model, out, manifest)})
    manifest.save(out)
    return manifest


def check_export(model: PortraitMattingModel, out_dir: Path, manifest: ExportManifest,
                 seed: int = 1) -> dict[str, float]:
    """Max |ONNX Runtime (CPU) - PyTorch| for each graph's outputs on fresh random inputs."""
    from matting_core.backends.ort_session import OrtOptions, create_session

    opts = OrtOptions(providers="cpu")
    g = torch.Generator().manual_seed(seed)
    in_h, in_w = (manifest.coarse_height, manifest.coarse_width) if manifest.scaled else (manifest.height,
                                                                                          manifest.width)
    frame = torch.randint(0, 256, (1, in_h, in_w, 3), dtype=torch.uint8, generator=g)
    diffs: dict[str, float] = {}
    with torch.no_grad():
        ref = (CoarseLogits if manifest.scaled else CoarseStage)(model)(frame)
    got = create_session(out_dir / manifest.files["coarse"], opts).run({"frame": frame.numpy()})
    for name, a, b in zip(("alpha_logits", "trimap_logits", "upsampled"), got, ref):
        diffs[f"coarse.{name}"] = float(np.abs(a - b.numpy()).max())
    grid = (manifest.padded_height // model.cfg.region_size, manifest.padded_width // model.cfg.region_size)
    n = manifest.budget if manifest.budget is not None else min(37, grid[0] * grid[1])
    patches, coords, index, valid = example_refine_inputs(n, manifest.knn_k, grid, seed)
    for cra in (True, False):
        feed = {"patches": patches.numpy()}
        if cra:
            feed.update(coords=coords.numpy(), neighbour_index=index.numpy(), neighbour_valid=valid.numpy())
        with torch.no_grad():
            want = refine_stage(model, cra)(patches, *((coords, index, valid) if cra else ()))
        key = "refine_cra" if cra else "refine_nocra"
        out = create_session(out_dir / manifest.files[key], opts).run(feed)[0]
        diffs[key] = float(np.abs(out - want.numpy()).max())
    for name, d in diffs.items():
        log.info("ONNX vs PyTorch max |diff| %s: %.3g", name, d)
    return diffs
