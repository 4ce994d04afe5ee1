"""Dropping unsure islands: which patches of alpha go, which stay, and the torch and numpy paths agreeing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import matting_core.model
from matting_core.config import DROP_ISLANDS_BELOW
from matting_core.engine import EngineOptions, MattingEngine
from matting_core.islands import cell_means, drop_unsure_islands_numpy, unsure_island_cells
from matting_core.regions import drop_unsure_islands


def _grid() -> np.ndarray:
    """A 20 x 30 cell grid: a solid person (left), a grey door (right, apart from it), and a small solid
    second person (bottom middle)."""
    g = np.zeros((20, 30), np.float32)
    g[4:20, 2:10] = 1.0  # person: 128 cells, all solid
    g[2:18, 22:27] = 0.6  # door: 80 cells, none solid
    g[15:20, 14:17] = 1.0  # second person: 15 cells, all solid
    return g


def test_an_unsolid_island_and_its_rim_are_cleared_solid_ones_are_kept():
    g = _grid()
    clear = unsure_island_cells(g, 0.25)
    door = np.zeros_like(clear)
    door[1:19, 21:28] = True  # the door grown by one cell
    np.testing.assert_array_equal(clear, door)


def test_the_largest_island_is_kept_even_without_a_solid_cell():
    g = np.zeros((10, 20), np.float32)
    g[2:9, 1:6] = 0.5  # 35 cells of grey: the only thing the model sees, e.g. a blurred person
    g[2:5, 12:15] = 0.5  # 9 cells of grey elsewhere
    clear = unsure_island_cells(g, 0.25)
    assert not clear[2:9, 1:6].any()
    assert clear[2:5, 12:15].all()


def test_an_island_with_enough_solid_cells_is_kept():
    g = _grid()
    g[2:6, 22:27] = 1.0  # 20 of the door's 80 cells solid: a 25% share
    assert not unsure_island_cells(g, 0.25).any()
    assert unsure_island_cells(g, 0.3)[2:18, 22:27].all()


@pytest.mark.parametrize("grid", [np.zeros((5, 5), np.float32), np.full((5, 5), 0.5, np.float32)])
def test_nothing_or_one_island_clears_nothing(grid):
    assert not unsure_island_cells(grid, 0.9).any()


def test_zero_turns_it_off():
    assert not unsure_island_cells(_grid(), 0.0).any()


def _alpha(h: int = 157, w: int = 237) -> np.ndarray:
    """(1, 1, h, w) alpha from the grid at 8 px a cell, cut to a size that is not a multiple of 8."""
    a = _grid().repeat(8, 0).repeat(8, 1)[:h, :w]
    return a[None, None].astype(np.float32).copy()


@pytest.mark.parametrize(("h", "w"), [(64, 96), (157, 237), (9, 7)])
def test_cell_means_are_the_exact_box_means_partial_cells_included(h, w):
    a = np.random.default_rng(h).random((h, w), dtype=np.float32)
    want = torch.nn.functional.avg_pool2d(torch.from_numpy(a)[None, None], 8, 8, ceil_mode=True)[0, 0].numpy()
    got = cell_means(a, 8)
    assert got.shape == want.shape == (-(-h // 8), -(-w // 8))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert got[-1, -1] == pytest.approx(a[(h - 1) // 8 * 8 :, (w - 1) // 8 * 8 :].mean(), abs=1e-5)


def test_torch_and_numpy_paths_clear_the_same_pixels():
    a = _alpha()
    got_np = drop_unsure_islands_numpy(a, 0.25)
    got_t = drop_unsure_islands(torch.from_numpy(a), 0.25).numpy()
    np.testing.assert_array_equal(got_np, got_t)
    assert got_np.shape == a.shape
    door = a[0, 0] == np.float32(0.6)
    assert door.any() and (got_np[0, 0][door] == 0).all()
    np.testing.assert_array_equal(got_np[0, 0][~door], a[0, 0][~door])


def test_each_image_of_a_batch_is_judged_alone():
    a = np.concatenate([_alpha(), _alpha()], 0)
    a[1, 0, :, :100] = 0  # second image: the people gone, the door is its largest island
    got = drop_unsure_islands(torch.from_numpy(a), 0.25).numpy()
    assert (got[0, 0][a[0, 0] == np.float32(0.6)] == 0).all()
    np.testing.assert_array_equal(got[1], a[1])


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="drop_islands"):
        EngineOptions(drop_islands=value)


@pytest.mark.parametrize(("options", "expected"), [(EngineOptions(), DROP_ISLANDS_BELOW),
                                                   (EngineOptions(drop_islands=0.0), 0.0)])
def test_the_engine_drops_islands_of_the_cropped_frame_by_default(tiny_model, monkeypatch, options, expected):
    seen = []

    def spy(alpha, min_solid, r=8):
        seen.append((tuple(alpha.shape), min_solid, r))
        return torch.full_like(alpha, 0.25)

    monkeypatch.setattr(matting_core.model, "drop_unsure_islands", spy)
    frame = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    alpha = MattingEngine(tiny_model, options).matte(frame)
    assert seen == [((1, 1, 50, 70), expected, tiny_model.cfg.region_size)]  # the frame's size, not the padded one
    assert alpha.shape == (50, 70) and np.all(alpha == 0.25)  # what the rule returns is what the engine gives
