"""Content-dependent FLOPs of one frame: the coarse pass plus the regions actually refined.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` on the real forward pass, so the refinement's cost
follows the number of uncertain regions in *this* frame. torch counts a multiply-add as 2 FLOPs; the paper
(fvcore) counts it as 1, so :class:`FrameFlops` reports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from matting_core.model import PortraitMattingModel


@dataclass(frozen=True)
class FrameFlops:
    """GFLOPs (2 per multiply-add) of the whole frame and of its parts, and the regions refined."""

    total_gflops: float
    coarse_gflops: float
    refine_gflops: float
    regions: int

    @property
    def paper_gflops(self) -> float:
        """The paper's convention (fvcore: one multiply-add = one FLOP)."""
        return self.total_gflops / 2.0


@torch.no_grad()
def frame_gflops(
    model: PortraitMattingModel, image: torch.Tensor, use_cra: bool | None = None, region_budget: int | None = None
) -> FrameFlops:
    """FLOPs of ``model`` on ``image`` (1, 3, H, W) in [0, 1]."""
    model = model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(image, use_cra=use_cra, region_budget=region_budget)
    per_module = counter.get_flop_counts()
    total = counter.get_total_flops()
    refine = sum(per_module.get(f"{type(model).__name__}.refiner", {}).values())
    return FrameFlops(total / 1e9, (total - refine) / 1e9, refine / 1e9, len(out.regions))
