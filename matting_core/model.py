"""The two-stage portrait matting model: coarse network -> uncertain regions -> refiner with CRA (paper Fig. 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from matting_core.coarse import CoarseNet, CoarseOutput
from matting_core.config import ModelConfig
from matting_core.neighbours import Neighbours, find_neighbours
from matting_core.refiner import Refiner
from matting_core.regions import (
    Regions,
    clear_faint_background,
    crop_patches,
    drop_unsure_islands,
    fill_definite_foreground,
    paste_patches,
    select_top_k,
    select_uncertain,
)


class StageClock(Protocol):
    """Receives stage boundaries from :meth:`PortraitMattingModel.forward` (for per-stage timings)."""

    def mark(self, stage: str) -> None: ...


class _NoClock:
    def mark(self, stage: str) -> None:
        pass


NO_CLOCK = _NoClock()

#: A KNN search: (coords (N, 2), batch (N,), k) -> Neighbours.
NeighbourSearch = Callable[[torch.Tensor, torch.Tensor, int], Neighbours]

#: Frames whose short side is below this are padded up to it: the paper's lower limit (section 3.4), below
#: which Swin's last stage would see less than one window of real content.
MIN_SIDE = 224


@dataclass
class MattingOutput:
    """Everything one forward pass produces. Shapes for input (B, 3, H, W); h8 = 2 * ceil(Hpad / 16).

    alpha: (B, 1, H, W) final alpha in [0, 1].
    upsampled_alpha: (B, 1, H, W) coarse alpha, bilinearly upsampled (the refiner's input and paste base).
    coarse_alpha_logits: (B, 1, h8, w8); trimap_logits: (B, 3, h8, w8), 0=bg 1=unknown 2=fg.
    aux_alpha_logits / aux_trimap_logits: deep-supervision logits at 1/32 and 1/16 (training only).
    regions: the refined cells; refined_patches: (N, 1, 8, 8) their refined alpha.
    """

    alpha: torch.Tensor
    upsampled_alpha: torch.Tensor
    coarse_alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    aux_alpha_logits: list[torch.Tensor]
    aux_trimap_logits: list[torch.Tensor]
    regions: Regions
    refined_patches: torch.Tensor


def pad_frame(image: torch.Tensor, multiple: int, min_side: int = MIN_SIDE) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad (B, C, H, W) at the bottom/right to a multiple of ``multiple`` and at least ``min_side``."""
    h, w = image.shape[-2:]
    hp = max(-(-h // multiple) * multiple, -(-min_side // multiple) * multiple)
    wp = max(-(-w // multiple) * multiple, -(-min_side // multiple) * multiple)
    if (hp, wp) != (h, w):
        image = F.pad(image, (0, wp - w, 0, hp - h), mode="replicate")
    return image, h, w


def scaled_size(height: int, width: int, scale: float, multiple: int) -> tuple[int, int]:
    """The scaled coarse input for a ``height`` x ``width`` padded frame: each side times ``scale``, rounded to
    whole ``multiple``s (patches), so the coarse net never sees a part-padded patch row. Why: 448/1080 of a
    1088-row frame is 451 rows, padded to 464: a patch row of replicated bottom edge that a model trained on
    448 px squares never saw. Shared with the ONNX export, whose coarse graph takes this size."""
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


class PortraitMattingModel(nn.Module):
    """Coarse Swin-T network + refinement of the uncertain 8x8 regions, end to end."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.coarse = CoarseNet(cfg)
        self.refiner = Refiner(cfg.token_dim, cfg.cra_heads, cfg.search_range)

    def _coarse(self, padded: torch.Tensor, scale: float) -> CoarseOutput:
        """The coarse pass on the padded frame, or on a ``scale``d copy with logits brought back to its grid."""
        if scale >= 1.0:
            return self.coarse(padded)
        hp, wp = padded.shape[-2:]
        hs, ws = scaled_size(hp, wp, scale, self.cfg.patch_size)
        small = F.interpolate(padded, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True)
        out = self.coarse(pad_frame(small, self.cfg.patch_size)[0])  # pads only below MIN_SIDE
        r = self.cfg.region_size
        # The scaled frame covers the whole padded frame, so its 1/8 logits (less any MIN_SIDE padding)
        # resample straight onto the full frame's cell grid.
        rows, cols = hs // r, ws // r

        def regrid(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t[..., :rows, :cols], size=(hp // r, wp // r), mode="bilinear", align_corners=False)

        return CoarseOutput(regrid(out.alpha_logits), regrid(out.trimap_logits), [], [])

    def coarse_stage(
        self, image: torch.Tensor, coarse_scale: float = 1.0
    ) -> tuple[torch.Tensor, CoarseOutput, torch.Tensor]:
        """Stage 1: the 16-padded frame, the coarse logits on its 1/8 grid, and the coarse alpha bilinearly
        upsampled to it (the refiner's input and paste base). Backends reuse this (export, CUDA graphs)."""
        padded, _, _ = pad_frame(image, self.cfg.patch_size)
        coarse = self._coarse(padded, coarse_scale)
        up = F.interpolate(
            torch.sigmoid(coarse.alpha_logits), scale_factor=self.cfg.region_size, mode="bilinear",
            align_corners=False,
        )
        return padded, coarse, up

    def refine_stage(
        self,
        padded: torch.Tensor,
        up: torch.Tensor,
        regions: Regions,
        use_cra: bool,
        neighbours: NeighbourSearch,
        clock: StageClock = NO_CLOCK,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: crop the regions from RGB + upsampled alpha, [KNN + CRA], refine, paste.

        ``neighbours(coords, batch, k)`` is the KNN search (backends pass a sync-free one).
        Returns the full padded alpha and the refined patches (N, 1, r, r).
        """
        r = self.cfg.region_size
        patches = crop_patches(torch.cat([padded, up], dim=1), regions, r)
        clock.mark("coarse")
        if len(regions) == 0:
            refined = patches[:, 3:4]
        elif use_cra:
            with torch.no_grad():
                nb = neighbours(regions.coords, regions.batch, self.cfg.knn_k)
            clock.mark("knn")
            refined = self.refiner(patches, regions.coords, nb.index, nb.valid)
        else:
            refined = self.refiner(patches)
        alpha = paste_patches(up, refined, regions, r)
        clock.mark("refine")
        return alpha, refined

    def forward(
        self,
        image: torch.Tensor,
        *,
        use_cra: bool | None = None,
        region_budget: int | None = None,
        knn: str = "auto",
        clock: StageClock | None = None,
        coarse_scale: float = 1.0,
        clear_background: float = 0.0,
        fill_foreground: float = 1.0,
        drop_islands: float = 0.0,
    ) -> MattingOutput:
        """``image`` (B, 3, H, W) RGB in [0, 1], any H, W. ``region_budget`` = fixed top-K cells per image.

        ``clock`` (optional) is told when each stage ends: "coarse", "knn", "refine".
        ``coarse_scale`` < 1 runs only the coarse network on a smaller copy of the frame; its 1/8 logits are
        resampled to the full frame's 1/8 grid, so regions are still cut and refined at full resolution.
        ``clear_background`` > 0: final alpha below it in background cells is set to 0
        (``regions.clear_faint_background``; 0 = the paper's plain paste, what training uses).
        ``fill_foreground`` < 1: final alpha in foreground cells is divided by it and clipped to 1
        (``regions.fill_definite_foreground``; 1 = the paper's plain paste, what training uses).
        ``drop_islands`` > 0: patches of alpha apart from the largest one with under this share of solid cells
        are set to 0 (``regions.drop_unsure_islands``; it needs a host sync, so 0 in CUDA graphs and training).
        """
        use_cra = self.cfg.use_cra if use_cra is None else use_cra
        h, w = image.shape[-2:]
        padded, coarse, up = self.coarse_stage(image, coarse_scale)
        with torch.no_grad():
            trimap = coarse.trimap_logits.detach()
            regions = select_uncertain(trimap) if region_budget is None else select_top_k(trimap, region_budget)

        # A fixed budget gives every image the same region count: the pairwise search is then sync-free.
        images = image.shape[0] if region_budget is not None else None

        def search(coords: torch.Tensor, batch: torch.Tensor, k: int) -> Neighbours:
            return find_neighbours(coords, batch, k, knn, images=images)

        alpha, refined = self.refine_stage(padded, up, regions, use_cra, search, clock or NO_CLOCK)
        alpha = clear_faint_background(alpha, coarse.trimap_logits, clear_background, self.cfg.region_size)
        alpha = fill_definite_foreground(alpha, coarse.trimap_logits, fill_foreground, self.cfg.region_size)
        alpha = drop_unsure_islands(alpha[..., :h, :w], drop_islands, self.cfg.region_size)
        return MattingOutput(
            alpha=alpha,
            upsampled_alpha=up[..., :h, :w],
            coarse_alpha_logits=coarse.alpha_logits,
            trimap_logits=coarse.trimap_logits,
            aux_alpha_logits=coarse.aux_alpha_logits,
            aux_trimap_logits=coarse.aux_trimap_logits,
            regions=regions,
            refined_patches=refined,
        )
