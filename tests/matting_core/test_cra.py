"""Cross Region Attention: Fig. 2 lookup, KNN search, centre-only second block."""

from __future__ import annotations

import numpy as np
import torch

from matting_core.cra import AttentionBlock, CrossRegionAttention, RelativePositionBias, relative_position_index
from matting_core.neighbours import find_neighbours, knn_kdtree, knn_pairwise


def test_bias_lookup_reproduces_figure_2():
    """s=3: a 5x5 window, 25 + 1 entries; centre -> 13th slot, yellow (-1, -2) -> 6th, out of range -> last."""
    table = RelativePositionBias(search_range=3, heads=1)
    assert table.table.shape == (26, 1)
    idx = relative_position_index(torch.tensor([[0, 0], [-1, -2], [3, 0], [0, -3], [2, 2], [-2, -2], [1, 5]]), 3)
    assert idx.tolist() == [12, 5, 25, 25, 24, 0, 25]  # 0-based: slot 13 = 12, slot 6 = 5
    with torch.no_grad():
        table.table[:, 0] = torch.arange(26.0)
    bias = table(torch.tensor([[[4, 4], [3, 2], [7, 4]]]))  # centre, yellow, out of range (dy = 3)
    assert bias[0, 0, 0].tolist() == [12.0, 5.0, 25.0]


def test_default_table_has_49_plus_1_entries_per_head():
    cra = CrossRegionAttention(dim=128, heads=8, search_range=4)
    assert cra.bias.table.shape == (50, 8)


def _brute_force(coords: np.ndarray, batch: np.ndarray, k: int) -> list[np.ndarray]:
    out = []
    for i in range(len(coords)):
        same = np.flatnonzero((batch == batch[i]) & (np.arange(len(coords)) != i))
        d = np.linalg.norm(coords[same] - coords[i], axis=1)
        out.append(np.sort(d)[:k])
    return out


def test_knn_matches_brute_force_search():
    rng = np.random.default_rng(0)
    cells = rng.choice(40 * 40, size=150, replace=False)
    coords = torch.from_numpy(np.stack([cells // 40, cells % 40], 1))
    batch = torch.from_numpy(np.sort(rng.integers(0, 3, 150)))
    expected = _brute_force(coords.numpy().astype(float), batch.numpy(), 8)
    for nb in (knn_kdtree(coords, batch, 8), knn_pairwise(coords, batch, 8)):
        d = (coords[nb.index] - coords[:, None]).float().norm(dim=-1).numpy()
        got = [np.sort(row) for row in d]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e)
        assert bool((batch[nb.index] == batch[:, None]).all())  # same image only
        assert not bool((nb.index == torch.arange(150)[:, None]).any())  # self excluded


def test_kdtree_and_pairwise_pick_the_same_cells_even_among_ties():
    """Integer cells tie a lot; both searches rank equal distances by index, so CPU and GPU agree exactly."""
    ys, xs = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], 1)[::2]  # a dense grid: many equidistant neighbours
    batch = torch.zeros(coords.shape[0], dtype=torch.long)
    batch[40:] = 1
    for k in (4, 8, 16):
        a, b = knn_kdtree(coords, batch, k), knn_pairwise(coords, batch, k)
        assert torch.equal(a.index, b.index) and torch.equal(a.valid, b.valid)


def test_knn_pads_and_flags_when_an_image_has_few_regions():
    coords = torch.tensor([[0, 0], [0, 1], [5, 5]])
    batch = torch.tensor([0, 0, 1])
    for nb in (knn_kdtree(coords, batch, 3), knn_pairwise(coords, batch, 3)):
        assert nb.valid.tolist() == [[True, False, False], [True, False, False], [False, False, False]]
        assert nb.index[0, 0] == 1 and nb.index[1, 0] == 0
    auto = find_neighbours(coords, batch, 3)
    assert auto.valid.shape == (3, 3)


def test_second_block_attends_from_the_centre_query_only():
    torch.manual_seed(0)
    block = AttentionBlock(dim=16, heads=2)
    tokens = torch.randn(5, 9, 16)
    bias = torch.zeros(5, 2, 9, 9)
    base = block(tokens, bias, centre_only=True)
    assert base.shape == (5, 1, 16)

    original = block.qkv.forward

    def perturbed_queries(x):
        qkv = original(x).clone()
        qkv[:, 1:, :16] += 10.0  # change the queries of every non-centre token, keys/values untouched
        return qkv

    block.qkv.forward = perturbed_queries
    torch.testing.assert_close(block(tokens, bias, centre_only=True), base)
    full = block(tokens, bias, centre_only=False)
    block.qkv.forward = original
    assert not torch.allclose(full[:, 1:], block(tokens, bias, centre_only=False)[:, 1:])


def test_cra_output_depends_on_neighbours_and_masks_padding():
    torch.manual_seed(0)
    cra = CrossRegionAttention(dim=16, heads=2, search_range=4)
    tokens = torch.randn(4, 16)
    coords = torch.tensor([[0, 0], [0, 1], [1, 0], [9, 9]])
    index = torch.tensor([[1, 2], [0, 2], [0, 1], [3, 3]])
    valid = torch.tensor([[True, True], [True, True], [True, True], [False, False]])
    out = cra(tokens, coords, index, valid)
    changed = tokens.clone()
    changed[1] = torch.randn(16)
    out2 = cra(changed, coords, index, valid)
    assert not torch.allclose(out[0], out2[0])  # region 0 sees neighbour 1
    torch.testing.assert_close(out[3], out2[3])  # region 3 has only padding neighbours
