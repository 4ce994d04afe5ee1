"""The two-stage model: shapes, padding masks, refinement semantics, CRA switch, gradients."""

from __future__ import annotations

import pytest
import torch

from matting_core.config import ConfigError, ModelConfig
from matting_core.model import PortraitMattingModel, scaled_size
from matting_core.regions import UNKNOWN
from matting_core.swin_masked import swin_features


@pytest.mark.parametrize("h, w", [(231, 257), (721, 1283), (1080, 1920), (100, 60)])
def test_alpha_has_the_input_size_for_odd_sizes(tiny_model, h, w):
    with torch.no_grad():
        out = tiny_model(torch.rand(1, 3, h, w), region_budget=64)
    assert out.alpha.shape == (1, 1, h, w)
    assert out.upsampled_alpha.shape == (1, 1, h, w)
    hp, wp = max(-(-h // 16) * 16, 224), max(-(-w // 16) * 16, 224)
    assert out.trimap_logits.shape == (1, 3, hp // 8, wp // 8)
    assert float(out.alpha.min()) >= 0.0 and float(out.alpha.max()) <= 1.0


def test_coarse_output_does_not_depend_on_the_amount_of_padding(tiny_model):
    """Padded tokens are masked out of window attention, so more padding changes nothing."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, 240, 336)  # 15 x 21 tokens: needs padding at every stage
    coarse = tiny_model.coarse
    with torch.no_grad():
        a = coarse(x, extra_pad=0)
        b = coarse(x, extra_pad=2)
    torch.testing.assert_close(a.alpha_logits, b.alpha_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.trimap_logits, b.trimap_logits, atol=1e-5, rtol=1e-5)


def test_unmasked_padding_would_change_the_output(tiny_model):
    """Control for the test above: timm's own block (zero padding, no mask) is padding-dependent."""
    x = torch.rand(1, 3, 240, 336)
    enc = tiny_model.coarse.encoder
    with torch.no_grad():
        masked = swin_features(enc, x)[0]
        plain = enc.patch_embed(x)
        plain = enc.layers[0].blocks(plain)
    assert not torch.allclose(masked, plain, atol=1e-4)


def _forced(model: PortraitMattingModel, x: torch.Tensor, use_cra: bool):
    with torch.no_grad():
        return model(x, use_cra=use_cra, region_budget=40)


def test_pixels_outside_refined_regions_equal_the_upsampled_coarse_alpha(tiny_model):
    x = torch.rand(1, 3, 224, 240)
    out = _forced(tiny_model, x, True)
    outside = torch.ones_like(out.alpha, dtype=torch.bool)
    for y, xx in out.regions.coords.tolist():
        outside[..., y * 8 : y * 8 + 8, xx * 8 : xx * 8 + 8] = False
    assert len(out.regions) == 40
    assert torch.equal(out.alpha[outside], out.upsampled_alpha[outside])


def test_turning_cra_off_changes_only_refined_regions(tiny_model):
    torch.manual_seed(3)
    # make the CRA path matter: a non-zero bias table and output projection
    with torch.no_grad():
        tiny_model.refiner.cra.bias.table.normal_()
    x = torch.rand(1, 3, 224, 240)
    on, off = _forced(tiny_model, x, True), _forced(tiny_model, x, False)
    assert torch.equal(on.regions.coords, off.regions.coords)
    inside = torch.zeros_like(on.alpha, dtype=torch.bool)
    for y, xx in on.regions.coords.tolist():
        inside[..., y * 8 : y * 8 + 8, xx * 8 : xx * 8 + 8] = True
    assert torch.equal(on.alpha[~inside], off.alpha[~inside])
    assert not torch.equal(on.alpha[inside], off.alpha[inside])


def test_variable_selection_refines_exactly_the_cells_argmax_calls_unknown(tiny_model):
    with torch.no_grad():
        out = tiny_model(torch.rand(1, 3, 224, 224))
    unknown = (out.trimap_logits.argmax(1) == UNKNOWN)[0]
    assert len(out.regions) == int(unknown.sum())
    assert bool(unknown[out.regions.y, out.regions.x].all())


def test_gradients_reach_the_coarse_network_and_the_bias_table(tiny_cfg):
    torch.manual_seed(0)
    model = PortraitMattingModel(tiny_cfg).train()
    out = model(torch.rand(2, 3, 224, 224), region_budget=30)
    assert out.aux_alpha_logits and out.aux_trimap_logits
    (out.alpha.mean() + out.coarse_alpha_logits.mean()).backward()
    enc_grad = model.coarse.encoder.patch_embed.proj.weight.grad
    table_grad = model.refiner.cra.bias.table.grad
    assert enc_grad is not None and float(enc_grad.abs().sum()) > 0
    assert table_grad is not None and float(table_grad.abs().sum()) > 0


def test_refined_alpha_gradient_reaches_the_coarse_alpha_through_the_patches(tiny_cfg):
    torch.manual_seed(0)
    model = PortraitMattingModel(tiny_cfg).train()
    out = model(torch.rand(1, 3, 224, 224), region_budget=30)
    out.refined_patches.sum().backward()
    assert float(model.coarse.head8.alpha.conv.weight.grad.abs().sum()) > 0


def test_invalid_configs_are_rejected_with_a_reason():
    with pytest.raises(ConfigError, match="region_size"):
        ModelConfig(patch_size=8)
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({"nope": 1})
    cfg = ModelConfig(knn_k=4)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_scaled_coarse_pass_still_refines_at_full_resolution(tiny_model):
    """coarse_scale < 1: logits on the full frame's 1/8 grid, regions cut from the full-res frame."""
    x = torch.rand(1, 3, 240, 320)
    with torch.no_grad():
        full = tiny_model(x, region_budget=30)
        half = tiny_model(x, region_budget=30, coarse_scale=0.5)
    assert half.alpha.shape == full.alpha.shape == (1, 1, 240, 320)
    assert half.trimap_logits.shape == full.trimap_logits.shape
    assert len(half.regions) == 30
    outside = torch.ones_like(half.alpha, dtype=torch.bool)
    for y, xx in half.regions.coords.tolist():
        outside[..., y * 8 : y * 8 + 8, xx * 8 : xx * 8 + 8] = False
    assert torch.equal(half.alpha[outside], half.upsampled_alpha[outside])
    assert not torch.allclose(half.coarse_alpha_logits, full.coarse_alpha_logits)


def test_scaled_coarse_input_is_whole_patches(tiny_model):
    """224/540 of a 544-row padded frame is 225.6 rows: the coarse net must get 224 (14 whole patches), not 225
    padded to 240 with a patch row of replicated bottom edge, which a model trained at 224 never saw."""
    seen = []
    hook = tiny_model.coarse.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        with torch.no_grad():
            out = tiny_model(torch.rand(1, 3, 540, 960), region_budget=8, coarse_scale=224 / 540)
    finally:
        hook.remove()
    assert seen == [(224, 400)]  # 960 * 0.415 = 398 -> 400
    assert out.trimap_logits.shape[-2:] == (68, 120)  # the full padded frame's 1/8 grid (544 x 960)
    assert scaled_size(544, 960, 224 / 540, 16) == (224, 400)
    assert scaled_size(40, 40, 0.1, 16) == (16, 16)  # never below one patch


def test_budgeted_training_search_picks_the_kdtree_neighbours(tiny_model):
    """With a fixed budget the model tells the pairwise search the image count (its sync-free path); the
    result must still be the KD-tree's, image by image, or training would see other neighbours than inference."""
    torch.manual_seed(3)
    x = torch.rand(3, 3, 224, 256)
    with torch.no_grad():
        pairwise = tiny_model(x, use_cra=True, region_budget=25, knn="pairwise")
        kdtree = tiny_model(x, use_cra=True, region_budget=25, knn="kdtree")
    assert len(pairwise.regions) == 3 * 25
    torch.testing.assert_close(pairwise.alpha, kdtree.alpha, atol=1e-6, rtol=0)
