"""Training losses for the two-stage matting model.

``matting_loss(out, batch, weights)`` combines, following the authors' trainer (PAPER-NOTES section 4) with the
changes listed here:

coarse (1/8 grid of the model's padded frame; targets are replicate-padded the same way, see data.trimap):
- ``coarse_alpha``: BCE-with-logits against the area-downsampled GT alpha, written as KL divergence (BCE minus the
  target's entropy; same gradient) so that a perfect prediction scores 0 even with soft targets. With
  ``LossWeights.foreground`` > 1, cells inside the person weigh more (holes dearer than stray scenery).
- ``trimap``: focal loss (gamma 2) on the soft (area-downsampled one-hot) trimap targets, with class weights
  count^-0.5 normalised over the classes present (guarded: an absent class gets weight 0, never inf/NaN).
  ``LossWeights.trimap_loss = "ce"`` switches to class-weighted soft cross-entropy (as KL).
- ``aux_alpha`` / ``aux_trimap``: the same two terms on the deeper-supervision heads (1/32, 1/16), whose logits
  are bilinearly upsampled to the 1/8 grid first.

full resolution:
- ``alpha_l1``: "approximate L1" sqrt(d^2 + 1e-12) on the final alpha, weighted towards the unknown band.
- ``laplacian``: L1 between Laplacian pyramids (5 levels + low-pass residual), same weighting, summed over levels.
- ``coarse_fullres``: alpha L1 + Laplacian on the bilinearly upsampled coarse alpha (the refiner's input).
- ``composition``: alpha*fg + (1-alpha)*bg against the input image, same weighting.
- ``refine``: L1 of each refined 8x8 patch against the GT crop of its cell (not in the authors' trainer, asked
  for by the issue: it supervises the refiner directly even where pasting overlaps or clamps).

The unknown-band weighting: pixels whose full-res target class is "unknown" get weight w_u and all others
1 - w_u, with w_u = n_u^-p / (n_u^-p + n_k^-p) from the batch's pixel counts (p = ``band_power``, 2 as in the
authors' code). Since the band is small, w_u is close to 1 and the full-res terms focus on edges and hair, where
the coarse 1/8 grid cannot be right; the known areas still contribute a little so solid regions stay solid.
Each full-res term is normalised by the sum of weights, so the scale is "mean error per pixel".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from matting_core.data.batch import TrainBatch
from matting_core.data.trimap import UNKNOWN, cell_alpha, cell_trimap, pad_to_size, padded_size

_EPS = 1e-12
CELL = 8  # region size: one coarse-grid cell covers 8x8 pixels


@dataclass(frozen=True)
class LossWeights:
    """Weights of each loss term (0 disables a term) and the knobs of the terms themselves.

    coarse_alpha=1: the coarse head decides which cells are refined and fills every cell that is not, so it
        gets the authors' full weight.
    aux_alpha=1, aux_trimap=1 (per auxiliary head): deep supervision as in the authors' trainer; speeds up
        training of the deeper decoder stages. Set to 0 to train on the final 1/8 heads only.
    trimap=1: the trimap head is the region selector; a miss means an edge cell is never refined.
    alpha_l1=1, laplacian=1: the authors' full-resolution pair; L1 fixes values, the Laplacian pyramid fixes
        edge sharpness/structure at several scales.
    coarse_fullres=0.25: a full-res edge signal for the coarse head independent of which cells the predicted
        trimap sends to the refiner; small because the 1/8 BCE already supervises the coarse alpha.
    composition=1: ties alpha to colours: an alpha error is penalised in proportion to how visible it is
        (fg/bg contrast), as in the authors' trainer.
    refine=1: direct supervision of the refiner's 8x8 outputs (an addition to the authors' recipe).
    foreground=1: how much more a 1/8 cell inside the person costs than a background cell in the coarse alpha
        terms (``coarse_alpha``, ``aux_alpha``); > 1 makes holes in the person dearer than stray scenery (an
        addition: CPU windows 36-37 from the shipped model lowered scenery error but opened holes).
    band_power=2: exponent of the inverse-frequency unknown-band weighting (authors: 2).
    trimap_loss: "focal" (authors) or "ce"; focal_gamma=2 (authors).
    laplacian_levels=5 (authors).
    """

    coarse_alpha: float = 1.0
    aux_alpha: float = 1.0
    trimap: float = 1.0
    aux_trimap: float = 1.0
    alpha_l1: float = 1.0
    laplacian: float = 1.0
    coarse_fullres: float = 0.25
    composition: float = 1.0
    refine: float = 1.0
    foreground: float = 1.0
    band_power: float = 2.0
    trimap_loss: Literal["focal", "ce"] = "focal"
    focal_gamma: float = 2.0
    laplacian_levels: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and v < 0:
                raise ValueError(f"loss weight {f.name} must be >= 0, got {v}")
        if self.foreground <= 0:
            raise ValueError(f"loss weight foreground must be > 0 (1 = plain), got {self.foreground}")
        if self.trimap_loss not in ("focal", "ce"):
            raise ValueError(f"trimap_loss must be 'focal' or 'ce', got {self.trimap_loss!r}")
        if self.laplacian_levels < 1:
            raise ValueError(f"laplacian_levels must be >= 1, got {self.laplacian_levels}")


class _Regions(Protocol):
    batch: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor


class _Output(Protocol):
    """The fields of ``matting_core.model.MattingOutput`` the losses read."""

    alpha: torch.Tensor
    coarse_alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    aux_alpha_logits: list[torch.Tensor]
    aux_trimap_logits: list[torch.Tensor]
    upsampled_alpha: torch.Tensor
    regions: _Regions
    refined_patches: torch.Tensor


# --------------------------------------------------------------------------------------------- coarse terms
def soft_bce_kl(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BCE-with-logits against soft targets minus the targets' entropy (= KL, 0 when sigmoid(logits)==target).

    ``weight`` (broadcast over the cells) scales each cell's term; the mean is still over cells, not weights, so a
    weight of 1 everywhere is the plain mean and a heavier foreground adds to the loss rather than diluting the rest.
    """
    t = target.clamp(0.0, 1.0)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    entropy = -(t * torch.log(t.clamp_min(_EPS)) + (1 - t) * torch.log((1 - t).clamp_min(_EPS)))
    kl = bce - entropy
    return (kl * weight).mean() if weight is not None else kl.mean()


def foreground_cell_weights(alpha_target: torch.Tensor, foreground: float) -> torch.Tensor | None:
    """Per-cell weights 1 + (foreground - 1) * alpha: a cell inside the person costs ``foreground`` times a
    background cell, so a hole in the person (the webcam user sees the new background through their face) is
    dearer than a stray patch of scenery. None when ``foreground`` is 1 (the plain, unweighted loss)."""
    if foreground == 1.0:
        return None
    return 1.0 + (foreground - 1.0) * alpha_target.clamp(0.0, 1.0)


def trimap_class_weights(target: torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """Per-class weights count^-power over the batch (soft counts, in cells), normalised to sum 1.

    target: (B, 3, h, w) soft class fractions. A class with no mass gets weight 0 (no inf/NaN when it is absent).
    """
    counts = target.detach().sum(dim=(0, 2, 3))
    present = counts > 0
    w = torch.where(present, counts.clamp_min(1.0).pow(-power), torch.zeros_like(counts))
    return w / w.sum().clamp_min(_EPS)


def trimap_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Class-weighted focal loss with soft targets, normalised by the weighted target mass (a per-cell mean).

    logits, target: (B, 3, h, w); class_weights: (3,).
    """
    logp = F.log_softmax(logits.float(), dim=1)
    p = logp.exp()
    w = class_weights.view(1, -1, 1, 1) * target
    loss = -(w * (1 - p).pow(gamma) * logp).sum()
    return loss / w.sum().clamp_min(_EPS)


def trimap_ce_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted soft cross-entropy minus the targets' entropy (0 when softmax(logits)==target)."""
    logp = F.log_softmax(logits.float(), dim=1)
    w = class_weights.view(1, -1, 1, 1) * target
    kl = w * (torch.log(target.clamp_min(_EPS)) - logp)
    return kl.sum() / w.sum().clamp_min(_EPS)


def _to_grid(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == size:
        return logits.float()
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------- full-res terms
def unknown_band_weights(trimap: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """(B, H, W) class map -> (B, 1, H, W) per-pixel weights emphasising the unknown band (see module doc)."""
    unknown = (trimap == UNKNOWN).float()
    n_u = unknown.sum().clamp_min(1.0)
    n_k = (unknown.numel() - unknown.sum()).clamp_min(1.0)
    inv_u, inv_k = n_u.pow(-power), n_k.pow(-power)
    w_u = inv_u / (inv_u + inv_k)
    return (unknown * w_u + (1 - unknown) * (1 - w_u)).unsqueeze(1)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean of sqrt(d^2 + 1e-12) (a smooth L1: defined gradient at 0); weight broadcasts over channels."""
    err = torch.sqrt((pred.float() - target.float()) ** 2 + _EPS)
    if weight is None:
        return err.mean()
    w = weight.float().expand_as(err)
    return (w * err).sum() / w.sum().clamp_min(_EPS)


_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # 5-tap binomial (sigma ~1), sums to 16


def blur_decimate(x: torch.Tensor) -> torch.Tensor:
    """5x5 binomial blur (replicate padding) sampled at every second pixel: ``blur(x)[..., ::2, ::2]``.

    Written as two separable passes of shifted, strided slices rather than a grouped 5x5 ``conv2d``: on the CPU
    the convolution's backward for one channel took ~110 ms per 16x512x512 level (two Laplacian losses were ~27%
    of a training step); slices cost a few ms, and only the kept (even) rows and columns are computed.
    """
    h, w = x.shape[-2:]
    p = F.pad(x, (2, 2, 2, 2), mode="replicate")
    rows = sum(k * p[..., i : i + h : 2, :] for i, k in enumerate(_BINOMIAL))  # vertical pass, even rows only
    return sum(k * rows[..., :, i : i + w : 2] for i, k in enumerate(_BINOMIAL)) / 256.0


def laplacian_pyramid(x: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    """Band-pass levels of a (B, C, H, W) image plus the low-pass residual (``levels + 1`` tensors).

    5x5 binomial Gaussian (sigma ~1), replicate padding, decimation by 2; any H, W (odd sizes too).
    """
    out: list[torch.Tensor] = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 2:
            break
        down = blur_decimate(cur)
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        out.append(cur - up)
        cur = down
    out.append(cur)
    return out


def laplacian_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, levels: int = 5
) -> torch.Tensor:
    """Sum over pyramid levels of the weighted L1 between Laplacian pyramids (weights resized per level)."""
    total = pred.new_zeros((), dtype=torch.float32)
    for lp, lt in zip(laplacian_pyramid(pred.float(), levels), laplacian_pyramid(target.float(), levels)):
        w = None
        if weight is not None:
            w = F.interpolate(weight.float(), size=lp.shape[-2:], mode="bilinear", align_corners=False)
        total = total + weighted_l1(lp, lt, w)
    return total


def composition_loss(
    alpha: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, image: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted L1 between alpha*fg + (1-alpha)*bg and the input image (RGB)."""
    comp = alpha.float() * fg.float() + (1 - alpha.float()) * bg.float()
    return weighted_l1(comp, image, weight)


def gt_cell_patches(alpha: torch.Tensor, batch: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                    cell: int = 8, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Crop GT alpha (B, 1, H, W) into (N, 1, cell, cell) patches at cells (batch, y, x) of the padded frame.

    ``size`` = the model's padded frame (default: H, W rounded up to 2 * cell); padding as in ``cell_alpha``.
    """
    a = pad_to_size(alpha.float(), size or padded_size(*alpha.shape[-2:], 2 * cell))
    b, c, hp, wp = a.shape
    grid = a.view(b, c, hp // cell, cell, wp // cell, cell).permute(0, 2, 4, 1, 3, 5)
    return grid[batch.long(), y.long(), x.long()]


def refine_loss(out: _Output, alpha: torch.Tensor, size: tuple[int, int], cell: int = 8) -> torch.Tensor:
    """Mean L1 between refined patches and GT crops of their cells; 0 (still in the graph) with no regions.

    ``size``: the model's padded frame (H, W).
    """
    patches = out.refined_patches
    if patches is None or patches.numel() == 0:
        return patches.float().sum() * 0.0 if patches is not None else alpha.new_zeros(())
    r = out.regions
    gt = gt_cell_patches(alpha, r.batch, r.y, r.x, cell=cell, size=size)
    return (patches.float() - gt).abs().mean()


# --------------------------------------------------------------------------------------------- total
class _Coarse(Protocol):
    """The coarse fields a loss reads: ``CoarseOutput`` or ``MattingOutput`` (aux lists may be empty)."""

    alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    aux_alpha_logits: list[torch.Tensor]
    aux_trimap_logits: list[torch.Tensor]


def _coarse_terms(
    alpha_logits: torch.Tensor,
    trimap_logits: torch.Tensor,
    aux_alpha: list[torch.Tensor] | None,
    aux_trimap: list[torch.Tensor] | None,
    upsampled_alpha: torch.Tensor,
    batch: TrainBatch,
    w: LossWeights,
    band: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The terms that train only the coarse network: 1/8 BCE + focal trimap (+ deep supervision) and the
    full-resolution edge signal of its upsampled alpha."""
    grid = tuple(alpha_logits.shape[-2:])
    h, w_ = batch.image.shape[-2:]
    size = (grid[0] * CELL, grid[1] * CELL)  # the model's padded frame (multiple of 16, at least its min side)
    if size[0] < h or size[1] < w_:
        raise ValueError(f"coarse logits grid {grid} is smaller than the 1/8 grid of the {h}x{w_} batch")
    alpha_t = cell_alpha(batch.alpha, CELL, size)
    tri_t = cell_trimap(batch.trimap, CELL, size)
    cls_w = trimap_class_weights(tri_t)
    fg_w = foreground_cell_weights(alpha_t, w.foreground)

    def tri_loss(logits: torch.Tensor) -> torch.Tensor:
        lg = _to_grid(logits, grid)
        if w.trimap_loss == "focal":
            return trimap_focal_loss(lg, tri_t, cls_w, w.focal_gamma)
        return trimap_ce_loss(lg, tri_t, cls_w)

    terms: dict[str, torch.Tensor] = {}
    terms["coarse_alpha"] = soft_bce_kl(alpha_logits.float(), alpha_t, fg_w)
    terms["trimap"] = tri_loss(trimap_logits)
    zero = alpha_logits.new_zeros((), dtype=torch.float32)
    terms["aux_alpha"] = sum((soft_bce_kl(_to_grid(lg, grid), alpha_t, fg_w) for lg in aux_alpha or []), zero)
    terms["aux_trimap"] = sum((tri_loss(lg) for lg in aux_trimap or []), zero)
    terms["coarse_fullres"] = (weighted_l1(upsampled_alpha, batch.alpha, band)
                               + laplacian_loss(upsampled_alpha, batch.alpha, band, w.laplacian_levels))
    return terms


def _weighted_total(terms: dict[str, torch.Tensor], w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    total = next(iter(terms.values())).new_zeros((), dtype=torch.float32)
    for name, value in terms.items():
        weight = getattr(w, name)
        if weight:
            total = total + weight * value
    names = [*terms.keys(), "total"]
    values = torch.stack([*(t.detach().float() for t in terms.values()), total.detach()]).tolist()
    return total, dict(zip(names, values))


def coarse_loss(coarse: _Coarse, upsampled_alpha: torch.Tensor, batch: TrainBatch, weights: LossWeights | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted loss of the coarse network alone (``PortraitMattingModel.coarse_stage``'s outputs, cropped to
    the batch), for training the low-resolution network without running the refiner: the paper's
    future-work split, and ~3x cheaper a step on a CPU. Same terms and weights as in ``matting_loss``."""
    w = weights or LossWeights()
    terms = _coarse_terms(coarse.alpha_logits, coarse.trimap_logits, coarse.aux_alpha_logits,
                          coarse.aux_trimap_logits, upsampled_alpha, batch, w,
                          unknown_band_weights(batch.trimap, w.band_power))
    return _weighted_total(terms, w)


def matting_loss(out: _Output, batch: TrainBatch, weights: LossWeights | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total loss and the value of each (unweighted) term, for logging.

    ``out`` is a ``MattingOutput`` from the model in train mode, ``batch`` its input batch. All terms are
    computed in float32 (safe under autocast). The returned dict has one entry per term plus ``total``.
    """
    w = weights or LossWeights()
    band = unknown_band_weights(batch.trimap, w.band_power)
    terms = _coarse_terms(out.coarse_alpha_logits, out.trimap_logits, out.aux_alpha_logits,
                          out.aux_trimap_logits, out.upsampled_alpha, batch, w, band)
    size = (out.coarse_alpha_logits.shape[-2] * CELL, out.coarse_alpha_logits.shape[-1] * CELL)
    terms["alpha_l1"] = weighted_l1(out.alpha, batch.alpha, band)
    terms["laplacian"] = laplacian_loss(out.alpha, batch.alpha, band, w.laplacian_levels)
    terms["composition"] = composition_loss(out.alpha, batch.fg, batch.bg, batch.image, band)
    terms["refine"] = refine_loss(out, batch.alpha, size, CELL)
    return _weighted_total(terms, w)
