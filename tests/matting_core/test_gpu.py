"""The fast-path pieces that also run on the CPU: device compositing, fused attention, the runtime wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matting_core.backends.torch_runtime import (
    TorchRuntime,
    TorchRuntimeOptions,
    enable_fused_attention,
)
from matting_core.config import ModelConfig
from matting_core.gpu_composite import composite_numpy, composite_torch
from matting_core.model import PortraitMattingModel


@pytest.fixture(scope="module")
def model() -> PortraitMattingModel:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return PortraitMattingModel(ModelConfig()).eval()


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_torch_composite_equals_numpy_reference():
    rng = np.random.default_rng(1)
    fg, bg = _frame(37, 53, 1), _frame(37, 53, 2)
    alpha = rng.random((37, 53), dtype=np.float32)
    alpha[0, :5] = [0.0, 1.0, -0.5, 1.5, 0.5]  # exact ends and out-of-range values are clamped
    want = composite_numpy(fg, alpha, bg)
    got = composite_torch(torch.from_numpy(fg), torch.from_numpy(alpha)[None, None], torch.from_numpy(bg)).numpy()
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert (got[0, 0] == bg[0, 0]).all() and (got[0, 1] == fg[0, 1]).all() and (got[0, 2] == bg[0, 2]).all()


def test_composite_blends_halfway_and_accepts_half_precision_alpha():
    fg = np.full((4, 4, 3), 200, np.uint8)
    bg = np.full((4, 4, 3), 100, np.uint8)
    a = torch.full((4, 4), 0.5, dtype=torch.float16)
    assert (composite_torch(torch.from_numpy(fg), a, torch.from_numpy(bg)).numpy() == 150).all()


def test_composite_shape_errors_are_clear():
    fg = torch.zeros(4, 4, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="alpha must be"):
        composite_torch(fg, torch.zeros(5, 4), fg)
    with pytest.raises(ValueError, match="background must match"):
        composite_torch(fg, torch.zeros(4, 4), torch.zeros(4, 5, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        composite_torch(fg.float(), torch.zeros(4, 4), fg)


def test_fused_attention_switch_reaches_every_swin_block_and_keeps_the_output(model):
    x = torch.rand(1, 3, 224, 256, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        before = model(x, region_budget=40).alpha
        n = enable_fused_attention(model, True)
        after = model(x, region_budget=40).alpha
        enable_fused_attention(model, False)
    assert n == sum(model.cfg.depths)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_cra", [True, False])
def test_runtime_on_cpu_matches_the_model(model, use_cra):
    frame = _frame(224, 288, 4)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    opts = TorchRuntimeOptions(device="cpu", precision="fp32", use_cra=use_cra, region_budget=60,
                               channels_last=True, fused_attention=True)
    with torch.inference_mode():  # the runtime's default clearing, filling and island dropping (which the
        # runtime applies after its forward, outside any CUDA graph), passed to the model itself
        want = model(x, use_cra=use_cra, region_budget=60, clear_background=opts.clear_background,
                     fill_foreground=opts.fill_foreground, drop_islands=opts.drop_islands).alpha[0, 0].numpy()
    rt = TorchRuntime(model, opts)
    got = rt.matte(frame)
    enable_fused_attention(model, False)
    model.to(memory_format=torch.contiguous_format)
    assert got.shape == (224, 288)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert rt.mode == "eager" and not rt.use_graph and rt.last_region_count == 60


def test_runtime_end_to_end_composite_on_cpu(model):
    frame, bg = _frame(224, 224, 5), _frame(224, 224, 6)
    rt = TorchRuntime(model, TorchRuntimeOptions(device="cpu", precision="fp32", region_budget=30,
                                                 fused_attention=False, channels_last=False))
    with pytest.raises(RuntimeError, match="set_background"):
        rt.composite(frame)
    rt.set_background(bg)
    out = rt.composite(frame)
    alpha = rt.matte(frame)
    assert np.abs(out.astype(int) - composite_numpy(frame, alpha, bg).astype(int)).max() <= 1


def test_runtime_refuses_cuda_when_absent(model):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        TorchRuntime(model, TorchRuntimeOptions(device="cuda"))


def test_runtime_rejects_bad_frames_and_options(model):
    with pytest.raises(ValueError, match="region_budget"):
        TorchRuntimeOptions(region_budget=0)
    rt = TorchRuntime(model, TorchRuntimeOptions(device="cpu", precision="fp32", fused_attention=False,
                                                 channels_last=False))
    with pytest.raises(ValueError, match="uint8"):
        rt.upload(np.zeros((8, 8, 3), np.float32))


@pytest.fixture(scope="module")
def cra_model() -> PortraitMattingModel:
    """Random weights plus a non-zero CRA position table, so which neighbours are picked really matters."""
    torch.manual_seed(1)
    m = PortraitMattingModel(ModelConfig()).eval()
    with torch.no_grad():
        m.refiner.cra.bias.table.normal_(0, 1.0)
    return m


@pytest.mark.parametrize("use_cra", [True, False])
def test_static_forward_is_the_models_forward_with_a_budget(cra_model, use_cra):
    """The CUDA-graph path runs the model's budgeted forward; with the KD-tree it gives the model's result."""
    from matting_core.backends.torch_runtime import static_forward

    x = torch.rand(2, 3, 232, 248, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        want = cra_model(x, use_cra=use_cra, region_budget=50, knn="kdtree").alpha
        got, n = static_forward(cra_model, x, 50, use_cra, knn="kdtree")
        fast, _ = static_forward(cra_model, x, 50, use_cra)
    assert n == 100
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # The sync-free fixed-count search breaks ties like the KD-tree, so the fast path is the same model too.
    torch.testing.assert_close(fast, want, atol=1e-5, rtol=0)


def test_fixed_count_knn_breaks_ties_by_index():
    """A plus-shaped set: the centre's 4 nearest are at distance 1, then 4 more at distance 2; k=5 must take
    the four at distance 1 and then the lowest-index cell at distance 2, on every run and device."""
    from matting_core.backends.torch_runtime import knn_fixed_count

    cells = [(0, 2), (1, 2), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (3, 2), (4, 2)]  # row-major
    coords = torch.tensor(cells)
    nb = knn_fixed_count(coords, 1, 5)
    centre = cells.index((2, 2))
    picked = [cells[i] for i in nb.index[centre].tolist()]
    assert set(picked[:4]) == {(1, 2), (2, 1), (2, 3), (3, 2)}
    assert picked[4] == (0, 2)  # of (0,2), (2,0), (2,4), (4,2) the first in row-major order


@pytest.mark.parametrize("m", [1, 3, 9, 40])
def test_fixed_count_knn_matches_the_kdtree(m):
    """Same neighbour distances as the paper's KD-tree for every region (ties may pick other cells)."""
    from matting_core.backends.torch_runtime import knn_fixed_count
    from matting_core.neighbours import knn_kdtree

    g = torch.Generator().manual_seed(m)
    coords = torch.cat([torch.randperm(30 * 30, generator=g)[:m] for _ in range(2)])
    coords = torch.stack([coords // 30, coords % 30], 1)
    batch = torch.arange(2).repeat_interleave(m)
    fast, ref = knn_fixed_count(coords, 2, 8), knn_kdtree(coords, batch, 8)
    assert torch.equal(fast.valid, ref.valid)
    assert torch.equal(batch[fast.index], batch[:, None].expand(-1, 8))  # never crosses images

    def dists(nb):
        d = (coords[nb.index] - coords[:, None]).float().norm(dim=-1)
        return torch.where(nb.valid, d, torch.zeros_like(d)).sort(dim=1).values

    torch.testing.assert_close(dists(fast), dists(ref))
    own = torch.arange(2 * m)[:, None].expand(-1, 8)
    assert torch.equal(fast.index[~fast.valid], own[~fast.valid])
