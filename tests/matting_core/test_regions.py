"""Region selection and the crop / paste pair."""

from __future__ import annotations

import torch

from matting_core.regions import Regions, crop_patches, paste_patches, select_top_k, select_uncertain


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
