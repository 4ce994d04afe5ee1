"""Region selection and the crop / paste pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matting_core.backends.onnx_engine import clear_faint_background as clear_numpy
from matting_core.backends.onnx_engine import fill_definite_foreground as fill_numpy
from matting_core.regions import (
    Regions,
    clear_faint_background,
    crop_patches,
    fill_definite_foreground,
    paste_patches,
    select_top_k,
    select_uncertain,
)


def test_crop_then_paste_is_the_identity():
    torch.manual_seed(0)
    img = torch.rand(2, 4, 32, 48)
    regions = Regions(torch.tensor([0, 0, 1]), torch.tensor([0, 3, 2]), torch.tensor([5, 1, 0]))
    patches = crop_patches(img, regions)
    assert patches.shape == (3, 4, 8, 8)
    assert torch.equal(patches[1], img[0, :, 24:32, 8:16])
    assert torch.equal(paste_patches(img, patches, regions), img)


def test_paste_writes_only_the_regions_cells():
    base = torch.zeros(1, 1, 16, 24)
    regions = Regions(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    out = paste_patches(base, torch.ones(1, 1, 8, 8), regions)
    assert float(out.sum()) == 64 and float(out[0, 0, 8:16, 16:24].min()) == 1
    assert float(base.sum()) == 0  # pure: the input is untouched


def test_select_uncertain_and_top_k():
    logits = torch.zeros(2, 3, 4, 5)
    logits[0, 1, 1, 2] = 5.0  # one unknown cell in image 0
    logits[1, 1, 3, 4] = 5.0
    logits[1, 1, 0, 0] = 4.0
    sel = select_uncertain(logits)
    assert sel.batch.tolist() == [0, 1, 1] and sel.coords.tolist() == [[1, 2], [0, 0], [3, 4]]
    top = select_top_k(logits, 2)
    assert len(top) == 4 and top.batch.tolist() == [0, 0, 1, 1]
    assert [1, 2] in top.coords[:2].tolist()
    assert top.coords[2:].tolist() == [[0, 0], [3, 4]]


def _two_by_three_cells() -> tuple[torch.Tensor, torch.Tensor]:
    """A 16x24 alpha (2x3 cells of 8 px) at 0.2 everywhere, 0.5 in one background cell, and its trimap:
    row 0 = background, background, unknown; row 1 = foreground, background, background."""
    alpha = torch.full((1, 1, 16, 24), 0.2)
    alpha[0, 0, 8:16, 8:16] = 0.5
    logits = torch.zeros(1, 3, 2, 3)
    classes = torch.tensor([[0, 0, 1], [2, 0, 0]])
    logits.scatter_(1, classes[None, None], 4.0)
    return alpha, logits


def test_clear_faint_background_zeroes_only_faint_alpha_in_background_cells():
    alpha, logits = _two_by_three_cells()
    out = clear_faint_background(alpha, logits, 0.3)
    want = torch.full((2, 3), 0.2)
    want[0, 0] = want[0, 1] = want[1, 2] = 0.0  # faint background cells
    want[1, 1] = 0.5  # a background cell at or above the threshold is kept (a person part the trimap missed)
    cells = out[0, 0].reshape(2, 8, 3, 8).permute(0, 2, 1, 3)  # (cell y, cell x, 8, 8)
    assert torch.equal(cells.amin((2, 3)), want) and torch.equal(cells.amax((2, 3)), want)
    assert float(alpha[0, 0, 0, 0]) == pytest.approx(0.2)  # pure: the input is untouched
    assert clear_faint_background(alpha, logits, 0.0) is alpha  # 0 = the paper's plain paste


def test_clear_faint_background_takes_a_cropped_alpha_and_numpy_agrees():
    alpha, logits = _two_by_three_cells()
    cropped = alpha[..., :13, :21]  # the frame before padding to the cell grid
    out = clear_faint_background(cropped, logits, 0.3)
    assert out.shape == cropped.shape
    assert torch.equal(out, clear_faint_background(alpha, logits, 0.3)[..., :13, :21])
    np.testing.assert_array_equal(clear_numpy(alpha.numpy(), logits.numpy(), 0.3, 8),
                                  clear_faint_background(alpha, logits, 0.3).numpy())


def test_fill_definite_foreground_stretches_alpha_only_in_foreground_cells():
    alpha, logits = _two_by_three_cells()  # cell (1, 0) is foreground, holding 0.2
    alpha[0, 0, 8:12, 0:8] = 0.9  # its top half: a face the coarse net left at 0.9
    out = fill_definite_foreground(alpha, logits, 0.8)
    fg = out[0, 0, 8:16, 0:8]
    assert torch.all(fg[:4] == 1.0)  # at or above 0.8 -> fully opaque
    assert torch.allclose(fg[4:], torch.full((4, 8), 0.25))  # below: stretched linearly (0.2 / 0.8), no step
    rest = torch.ones_like(alpha, dtype=torch.bool)
    rest[0, 0, 8:16, 0:8] = False
    assert torch.equal(out[rest], alpha[rest])  # background and unknown cells untouched
    assert float(alpha[0, 0, 8, 0]) == pytest.approx(0.9)  # pure: the input is untouched
    assert fill_definite_foreground(alpha, logits, 1.0) is alpha  # 1 = the paper's plain paste


def test_fill_definite_foreground_takes_a_cropped_alpha_and_numpy_agrees():
    alpha, logits = _two_by_three_cells()
    alpha[0, 0, 8:16, 0:8] = torch.linspace(0, 1, 64).reshape(8, 8)
    cropped = alpha[..., :13, :21]
    out = fill_definite_foreground(cropped, logits, 0.7)
    assert out.shape == cropped.shape
    assert torch.equal(out, fill_definite_foreground(alpha, logits, 0.7)[..., :13, :21])
    np.testing.assert_allclose(fill_numpy(cropped.numpy(), logits.numpy(), 0.7, 8), out.numpy(), atol=1e-7)
    assert fill_numpy(alpha.numpy(), logits.numpy(), 0.7, 8).dtype == np.float32
