"""Losses: zero for a perfect prediction, growing with error, finite with absent classes, exact cell cropping."""

import math
from dataclasses import dataclass, field, replace

import pytest
import torch
import torch.nn.functional as F

from matting_core.data.batch import TrainBatch
from matting_core.data.trimap import cell_alpha, cell_trimap
from matting_core.losses import (
    LossWeights,
    blur_decimate,
    coarse_loss,
    gt_cell_patches,
    laplacian_loss,
    laplacian_pyramid,
    matting_loss,
    trimap_class_weights,
    unknown_band_weights,
)


@dataclass
class FakeRegions:
    batch: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor


@dataclass
class FakeOutput:
    """The MattingOutput fields the losses read."""

    alpha: torch.Tensor
    coarse_alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    upsampled_alpha: torch.Tensor
    regions: FakeRegions
    refined_patches: torch.Tensor
    aux_alpha_logits: list = field(default_factory=list)
    aux_trimap_logits: list = field(default_factory=list)


@dataclass
class FakeCoarse:
    """The CoarseOutput fields coarse_loss reads."""

    alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    aux_alpha_logits: list
    aux_trimap_logits: list


def _batch(b=2, h=32, w=32) -> TrainBatch:
    """Cell-aligned scene: solid fg cells on the left, a soft column band in the middle, bg on the right."""
    alpha = torch.zeros(b, 1, h, w)
    alpha[..., :, :8] = 1.0
    alpha[..., :, 8:24] = torch.linspace(1, 0, 16)
    trimap = torch.zeros(b, h, w, dtype=torch.long)
    trimap[:, :, :8] = 2
    trimap[:, :, 8:24] = 1
    g = torch.Generator().manual_seed(0)
    fg = torch.rand(b, 3, h, w, generator=g)
    bg = torch.rand(b, 3, h, w, generator=g)
    image = alpha * fg + (1 - alpha) * bg
    return TrainBatch(image=image, alpha=alpha, fg=fg, bg=bg, trimap=trimap)


def _perfect(batch: TrainBatch, with_aux: bool = True) -> FakeOutput:
    a8 = cell_alpha(batch.alpha).clamp(1e-6, 1 - 1e-6)
    t8 = cell_trimap(batch.trimap)
    tri_logits = 12.0 * (2 * t8 - 1)  # the scene is cell-aligned: one-hot targets
    reg = FakeRegions(torch.tensor([0, 1, 1]), torch.tensor([0, 2, 3]), torch.tensor([1, 2, 1]))
    out = FakeOutput(
        alpha=batch.alpha.clone(),
        coarse_alpha_logits=torch.logit(a8),
        trimap_logits=tri_logits,
        upsampled_alpha=batch.alpha.clone(),
        regions=reg,
        refined_patches=gt_cell_patches(batch.alpha, reg.batch, reg.y, reg.x),
    )
    if with_aux:  # aux heads at 1/32 and 1/16 whose upsampling is constant where the target is constant
        out.aux_alpha_logits = [F.avg_pool2d(torch.logit(a8), 2)]
        out.aux_trimap_logits = [F.avg_pool2d(tri_logits, 2)]
    return out


def test_perfect_prediction_has_near_zero_loss_with_ce():
    batch = _batch()
    total, parts = matting_loss(_perfect(batch, with_aux=False), batch, LossWeights(trimap_loss="ce"))
    assert total.item() < 1e-4
    assert set(parts) >= {"coarse_alpha", "trimap", "alpha_l1", "laplacian", "composition", "refine", "total"}
    for name, v in parts.items():
        assert v < 1e-4, name


def test_focal_loss_is_minimal_at_the_target_and_grows_away_from_it():
    batch = _batch()
    w = LossWeights(trimap=1.0)
    out = _perfect(batch, with_aux=False)
    _, good = matting_loss(out, batch, w)
    out_bad = replace(out, trimap_logits=out.trimap_logits.flip(1))
    _, bad = matting_loss(out_bad, batch, w)
    assert good["trimap"] < 1e-6
    assert bad["trimap"] > 1.0


def test_each_term_grows_with_the_error():
    batch = _batch()
    w = LossWeights()
    perfect = _perfect(batch)
    previous = matting_loss(perfect, batch, w)[1]
    for noise in (0.15, 0.3):
        out = replace(
            perfect,
            alpha=(batch.alpha + noise * torch.sin(torch.arange(32.0) * 1.7)).clamp(0, 1),
            upsampled_alpha=(batch.alpha + noise).clamp(0, 1),
            coarse_alpha_logits=perfect.coarse_alpha_logits + 10 * noise,
            trimap_logits=perfect.trimap_logits * (1 - 3 * noise),
            refined_patches=(perfect.refined_patches + noise).clamp(0, 1),
            aux_alpha_logits=[lg + 10 * noise for lg in perfect.aux_alpha_logits],
        )
        _, parts = matting_loss(out, batch, w)
        for name in ("coarse_alpha", "aux_alpha", "trimap", "alpha_l1", "laplacian", "coarse_fullres",
                     "composition", "refine", "total"):
            assert parts[name] > previous[name], (name, noise)
        previous = parts


def test_loss_is_finite_when_a_trimap_class_is_absent_and_gradients_flow():
    b, h, w = 2, 24, 40  # not a multiple of 16: exercises the padding
    alpha = torch.zeros(b, 1, h, w)
    batch = TrainBatch(image=torch.rand(b, 3, h, w), alpha=alpha, fg=torch.rand(b, 3, h, w),
                       bg=torch.rand(b, 3, h, w), trimap=torch.zeros(b, h, w, dtype=torch.long))
    h8, w8 = 4, 6
    coarse = torch.randn(b, 1, h8, w8, requires_grad=True)
    tri = torch.randn(b, 3, h8, w8, requires_grad=True)
    patches = torch.rand(0, 1, 8, 8, requires_grad=True)
    aux = torch.randn(b, 3, 1, 2, requires_grad=True)
    for kind in ("focal", "ce"):
        out = FakeOutput(alpha=torch.sigmoid(F.interpolate(coarse, size=(h, w))), coarse_alpha_logits=coarse,
                         trimap_logits=tri, upsampled_alpha=torch.sigmoid(F.interpolate(coarse, size=(h, w))),
                         regions=FakeRegions(*(torch.zeros(0, dtype=torch.long),) * 3), refined_patches=patches,
                         aux_trimap_logits=[aux])
        total, parts = matting_loss(out, batch, LossWeights(trimap_loss=kind))
        assert torch.isfinite(total)
        assert all(math.isfinite(v) for v in parts.values())
        tri.grad = None
        total.backward()
        assert torch.isfinite(tri.grad).all() and tri.grad.abs().sum() > 0
    assert parts["refine"] == 0.0


def test_class_weights_give_absent_classes_zero_weight():
    t = torch.zeros(1, 3, 2, 2)
    t[:, 0] = 1.0
    w = trimap_class_weights(t)
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0, 0.0]))
    t[:, 0, 0, 0], t[:, 2, 0, 0] = 0.0, 1.0  # 3 bg cells, 1 fg cell -> fg weighted sqrt(3) higher
    w = trimap_class_weights(t)
    assert w[2] / w[0] == pytest.approx(3 ** 0.5)


def test_laplacian_of_identical_images_is_zero_and_pyramid_reconstructs():
    x = torch.rand(2, 1, 37, 50)
    assert laplacian_loss(x, x.clone()).item() < 1e-5
    assert laplacian_loss(x, x.flip(-1)).item() > 0.05
    levels = laplacian_pyramid(x, levels=3)
    assert len(levels) == 4
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        rec = band + F.interpolate(rec, size=band.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(rec, x)


def test_unknown_band_gets_most_of_the_weight():
    t = torch.zeros(1, 10, 10, dtype=torch.long)
    t[0, :, 0] = 1  # 10 unknown pixels, 90 known
    wmap = unknown_band_weights(t)
    w_u = wmap[0, 0, 0, 0].item()
    assert w_u == pytest.approx(90**2 / (90**2 + 10**2))
    assert wmap[0, 0, 0, 5].item() == pytest.approx(1 - w_u)


def test_gt_cell_patches_use_bottom_right_padded_cell_indexing():
    alpha = torch.arange(20 * 20, dtype=torch.float32).view(1, 1, 20, 20) / 400  # padded to 32x32
    p = gt_cell_patches(alpha, torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([2, 1]))
    assert p.shape == (2, 1, 8, 8)
    torch.testing.assert_close(p[0, 0, :, :4], alpha[0, 0, 8:16, 16:20])
    torch.testing.assert_close(p[0, 0, :, 4:], alpha[0, 0, 8:16, 19:20].expand(8, 4))  # replicated column
    torch.testing.assert_close(p[1, 0, :4], alpha[0, 0, 16:20, 8:16])
    torch.testing.assert_close(p[1, 0, 4:], alpha[0, 0, 19:20, 8:16].expand(4, 8))  # replicated row


def test_grid_mismatch_and_bad_weights_give_clear_errors():
    batch = _batch()
    out = _perfect(batch, with_aux=False)
    out.coarse_alpha_logits = out.coarse_alpha_logits[..., :2, :]
    with pytest.raises(ValueError, match="smaller"):
        matting_loss(out, batch)
    with pytest.raises(ValueError, match=">= 0"):
        LossWeights(refine=-1.0)
    from matting_core.train import TrainConfig, TrainConfigError

    with pytest.raises(TrainConfigError, match=r"unknown setting.*refin.*\[loss\]"):
        TrainConfig.from_dict({"loss": {"refin": 1.0}})
    with pytest.raises(TrainConfigError, match=r"\[loss\] must be a table"):
        TrainConfig.from_dict({"loss": 3})


def test_real_model_loss_is_finite_and_trains_both_stages(tiny_cfg):
    from matting_core.data.trimap import trimap_from_alpha_torch
    from matting_core.model import PortraitMattingModel

    torch.manual_seed(0)
    model = PortraitMattingModel(tiny_cfg).train()
    image = torch.rand(2, 3, 72, 88)  # padded by the model to 224x224: targets must follow
    alpha = torch.rand(2, 1, 72, 88)
    batch = TrainBatch(image, alpha, image, image, trimap_from_alpha_torch(alpha))
    out = model(image)
    assert len(out.regions) > 0
    total, parts = matting_loss(out, batch)
    assert math.isfinite(total.item()) and parts["refine"] > 0
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("coarse."))
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("refiner."))


def test_coarse_loss_is_the_coarse_part_of_the_full_loss_and_trains_only_the_coarse_net(tiny_cfg):
    from matting_core.data.trimap import trimap_from_alpha_torch
    from matting_core.model import PortraitMattingModel

    torch.manual_seed(0)
    model = PortraitMattingModel(tiny_cfg).train()
    image = torch.rand(2, 3, 72, 88)
    alpha = torch.rand(2, 1, 72, 88)
    batch = TrainBatch(image, alpha, image, image, trimap_from_alpha_torch(alpha))
    _, coarse, up = model.coarse_stage(image)
    total, parts = coarse_loss(coarse, up[..., :72, :88], batch)
    _, full = matting_loss(model(image), batch)
    w = LossWeights()
    names = ("coarse_alpha", "trimap", "aux_alpha", "aux_trimap", "coarse_fullres")
    assert set(parts) == {*names, "total"}
    for name in names:
        assert parts[name] == pytest.approx(full[name], rel=1e-5), name
    assert parts["total"] == pytest.approx(sum(getattr(w, n) * parts[n] for n in names), rel=1e-5)
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("coarse."))
    assert all(g is None for n, g in grads.items() if n.startswith("refiner."))


def test_coarse_loss_of_a_perfect_coarse_prediction_is_near_zero():
    batch = _batch()
    out = _perfect(batch, with_aux=False)

    c = FakeCoarse(out.coarse_alpha_logits, out.trimap_logits, out.aux_alpha_logits, out.aux_trimap_logits)
    total, _ = coarse_loss(c, out.upsampled_alpha, batch, LossWeights(trimap_loss="ce"))
    assert total.item() < 1e-3
    c.alpha_logits = -c.alpha_logits  # a wrong coarse alpha must cost
    assert coarse_loss(c, out.upsampled_alpha, batch, LossWeights(trimap_loss="ce"))[0].item() > 1.0


@pytest.mark.parametrize("shape", [(2, 1, 37, 50), (1, 3, 8, 9), (1, 1, 2, 3)])
def test_blur_decimate_equals_binomial_conv_then_every_second_pixel(shape):
    """The sliced, separable blur is the 5x5 binomial convolution (replicate padding) it replaced, decimated."""
    x = torch.rand(*shape, dtype=torch.float64)
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16
    kernel = torch.outer(k1, k1).expand(shape[1], 1, 5, 5)
    ref = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=shape[1])[..., ::2, ::2]
    torch.testing.assert_close(blur_decimate(x), ref)


def test_foreground_weight_makes_a_hole_in_the_person_dearer_than_the_same_area_of_stray_scenery():
    """_batch has one solid fg cell column and one solid bg column: a hole (fg column called bg) and stray scenery
    (bg column called fg) are the same error mirrored, equal at foreground=1 and 3:1 at foreground=3."""
    batch = _batch()
    out = _perfect(batch, with_aux=False)
    up = out.upsampled_alpha

    def coarse_alpha_term(col: int, fg: float) -> float:
        logits = out.coarse_alpha_logits.clone()
        logits[..., col] = -logits[..., col]
        c = FakeCoarse(logits, out.trimap_logits, [], [])
        return coarse_loss(c, up, batch, LossWeights(foreground=fg))[1]["coarse_alpha"]

    hole, scenery = coarse_alpha_term(0, 1.0), coarse_alpha_term(3, 1.0)
    assert hole > 1.0 and hole == pytest.approx(scenery, rel=2e-3)  # logit(1 - 1e-6) is not exact in fp32
    assert coarse_alpha_term(0, 3.0) == pytest.approx(3 * hole, rel=1e-4)
    assert coarse_alpha_term(3, 3.0) == pytest.approx(scenery, rel=1e-4)
    with pytest.raises(ValueError, match="foreground must be > 0"):
        LossWeights(foreground=0.0)
