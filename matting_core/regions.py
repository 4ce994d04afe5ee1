"""Uncertain-region selection and the crop / paste pair of the refinement stage (paper 3.2).

A region is one cell of the 1/8 map, i.e. one ``r x r`` (8x8) patch of the full-resolution frame. Frames are
padded at the bottom/right to a multiple of 16, so the cells tile the padded frame exactly:
cell ``(y, x)`` covers pixels ``[r*y, r*y + r) x [r*x, r*x + r)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from matting_core.islands import unsure_island_cells

BACKGROUND, UNKNOWN, FOREGROUND = 0, 1, 2  # trimap class indices


@dataclass(frozen=True)
class Regions:
    """Selected cells: ``batch``, ``y``, ``x`` are LongTensors of shape (N,), ordered by (batch, y, x)."""

    batch: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor

    def __len__(self) -> int:
        return int(self.batch.shape[0])

    @property
    def coords(self) -> torch.Tensor:
        """(N, 2) cell coordinates (y, x)."""
        return torch.stack([self.y, self.x], dim=1)


def select_uncertain(trimap_logits: torch.Tensor) -> Regions:
    """Every cell whose argmax class is "unknown" (variable count; the paper's inference rule)."""
    unknown = trimap_logits.argmax(dim=1) == UNKNOWN  # (B, h, w)
    b, y, x = unknown.nonzero(as_tuple=True)
    return Regions(b, y, x)


def select_top_k(trimap_logits: torch.Tensor, budget: int) -> Regions:
    """The ``budget`` cells per image with the highest p(unknown): a fixed count, for static shapes.

    Fixed shapes are what ONNX/TensorRT export and CUDA graphs need. When fewer cells are uncertain than the
    budget, the most-uncertain certain cells fill it; refining a certain cell is harmless.
    """
    bsz, _, h, w = trimap_logits.shape
    k = min(int(budget), h * w)
    p_unknown = trimap_logits.softmax(dim=1)[:, UNKNOWN].reshape(bsz, -1)
    flat = p_unknown.topk(k, dim=1).indices.sort(dim=1).values  # (B, k), row-major order
    batch = torch.arange(bsz, device=flat.device).repeat_interleave(k)
    flat = flat.reshape(-1)
    return Regions(batch, flat // w, flat % w)


def _cells(image: torch.Tensor, r: int) -> torch.Tensor:
    """View (B, C, H, W) as (B, H/r, W/r, C, r, r) without copying."""
    bsz, c, h, w = image.shape
    if h % r or w % r:
        raise ValueError(f"frame {h}x{w} is not a multiple of the region size {r}")
    return image.reshape(bsz, c, h // r, r, w // r, r).permute(0, 2, 4, 1, 3, 5)


def crop_patches(image: torch.Tensor, regions: Regions, r: int = 8) -> torch.Tensor:
    """Cut the regions out of ``image`` (B, C, H, W) -> patches (N, C, r, r)."""
    return _cells(image, r)[regions.batch, regions.y, regions.x]


def paste_patches(image: torch.Tensor, patches: torch.Tensor, regions: Regions, r: int = 8) -> torch.Tensor:
    """A copy of ``image`` (B, C, H, W) with ``patches`` (N, C, r, r) written into the regions' cells."""
    out = image.clone()
    if len(regions):
        _cells(out, r)[regions.batch, regions.y, regions.x] = patches.to(out.dtype)
    return out


def trimap_class_pixels(trimap_logits: torch.Tensor, cls: int, r: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) bool: pixels of the cells whose trimap argmax is ``cls``, cropped to ``size`` = (H, W) at the
    bottom/right (the frame before padding to the cell grid, or the padded frame itself)."""
    mask = (trimap_logits.argmax(dim=1, keepdim=True) == cls).repeat_interleave(r, 2).repeat_interleave(r, 3)
    return mask[..., : size[0], : size[1]]


def clear_faint_background(
    alpha: torch.Tensor, trimap_logits: torch.Tensor, below: float, r: int = 8
) -> torch.Tensor:
    """``alpha`` (B, 1, H, W) with values under ``below`` set to 0 in the cells the trimap calls background.

    ``alpha`` may be the padded frame's or cropped from it at the bottom/right (cells start at the top-left).

    Why: the paper takes "definite background" from the upsampled coarse alpha, assuming it is 0 there; a
    weak coarse network leaves a faint grey (0.05-0.3) over furniture in cells its own trimap head calls
    background, which shows the old room through the new background. Values at or above ``below`` are kept,
    so a person part the trimap misses is not cut out. ``below`` <= 0 returns ``alpha`` unchanged.
    """
    if below <= 0:
        return alpha
    bg = trimap_class_pixels(trimap_logits, BACKGROUND, r, alpha.shape[-2:])
    return alpha.masked_fill(bg & (alpha < below), 0.0)


def fill_definite_foreground(
    alpha: torch.Tensor, trimap_logits: torch.Tensor, full_at: float, r: int = 8
) -> torch.Tensor:
    """``alpha`` (B, 1, H, W) divided by ``full_at`` and clipped to 1 in the cells the trimap calls foreground.

    ``alpha`` may be the padded frame's or cropped from it at the bottom/right (cells start at the top-left).

    Why: the paper takes "definite foreground" (alpha = 1) from the upsampled coarse alpha; a weak coarse
    network leaves 0.7-0.9 over faces and shirts in cells its own trimap head calls foreground, so the new
    background shows through the person. A linear stretch (not a threshold) adds no new edge inside a cell,
    and a cell the trimap wrongly calls foreground with low alpha stays low. ``full_at`` >= 1 returns
    ``alpha`` unchanged.
    """
    if full_at >= 1:
        return alpha
    fg = trimap_class_pixels(trimap_logits, FOREGROUND, r, alpha.shape[-2:])
    return torch.where(fg, (alpha / full_at).clamp(max=1.0), alpha)


def _cell_means(alpha: torch.Tensor, r: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 1, ceil(H / r), ceil(W / r)) mean alpha of each r x r cell (partial cells at the
    bottom/right average what they hold)."""
    return F.avg_pool2d(alpha.float(), r, r, ceil_mode=True)


def drop_unsure_islands(alpha: torch.Tensor, min_solid: float, r: int = 8) -> torch.Tensor:
    """``alpha`` (B, 1, H, W) with the unsure islands (``islands.unsure_island_cells``) of each image set to 0.

    Why: scenery a weak coarse network half-believes is a person (a door, a plant at alpha 0.4-0.8) survives
    clearing and refinement; it sits apart from the person and has no solid core (``matting_core.islands``).
    Cells start at the top-left, as the regions' do. ``min_solid`` <= 0 returns ``alpha`` unchanged; the
    labelling runs on the host (one download of the 1/64-size cell grid).
    """
    if min_solid <= 0:
        return alpha
    grid = _cell_means(alpha, r)[:, 0].cpu().numpy()
    clear = np.stack([unsure_island_cells(g, min_solid) for g in grid])
    if not clear.any():
        return alpha
    keep = torch.from_numpy(~clear).to(alpha.device, alpha.dtype)[:, None]
    keep = F.interpolate(keep, scale_factor=r, mode="nearest")[..., : alpha.shape[-2], : alpha.shape[-1]]
    return alpha * keep
