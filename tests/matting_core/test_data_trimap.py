"""Target trimaps: morphology classes, CPU/GPU agreement, 1/8 soft cell targets."""

import numpy as np
import pytest
import torch

from matting_core.data.batch import TrainBatch
from matting_core.data.trimap import (
    _trimaps_opencv,
    _trimaps_pooling,
    cell_alpha,
    cell_trimap,
    trimap_from_alpha,
    trimap_from_alpha_torch,
)


def _square_alpha(size: int = 32) -> np.ndarray:
    a = np.zeros((size, size), np.float32)
    a[8:24, 8:24] = 1.0
    a[8:24, 7] = 0.5  # a soft column left of the solid square
    return a


def test_trimap_classes_follow_erosion_and_dilation():
    t = trimap_from_alpha(_square_alpha(), kernel=3)
    assert t.dtype == np.uint8 and t.shape == (32, 32)
    # fg core = square eroded by 1 px; unknown = dilated support minus core; bg elsewhere
    assert (t[9:23, 9:23] == 2).all()
    assert t[8, 8] == 1 and t[8, 15] == 1  # square border pixels are no longer core
    assert t[15, 6] == 1  # dilation of the soft column
    assert t[15, 5] == 0 and t[0, 0] == 0 and t[15, 25] == 0
    assert t[15, 24] == 1  # one pixel outside the square, inside the dilation


def test_kernel_one_is_plain_thresholding_and_uint8_input_is_scaled():
    a = np.array([[0, 2, 128, 253, 255]], np.uint8)
    np.testing.assert_array_equal(trimap_from_alpha(a, kernel=1), [[0, 0, 1, 2, 2]])


def test_person_cut_by_frame_edge_stays_foreground_at_the_edge():
    a = np.ones((20, 20), np.float32)
    assert (trimap_from_alpha(a) == 2).all()
    assert (trimap_from_alpha_torch(torch.from_numpy(a)[None, None]) == 2).all()


def test_even_kernel_and_bad_shape_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        trimap_from_alpha(_square_alpha(), kernel=4)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        trimap_from_alpha(np.zeros((2, 4, 4), np.float32))


def test_torch_version_matches_opencv_on_random_soft_mattes():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:50]
    mats = []
    for _ in range(3):
        cy, cx, r = rng.uniform(12, 28), rng.uniform(12, 38), rng.uniform(9, 14)
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        mats.append(np.clip((r - d) / 4 + 0.5, 0, 1).astype(np.float32))
    batch = torch.from_numpy(np.stack(mats))[:, None]
    got = trimap_from_alpha_torch(batch, kernel=7)
    assert got.dtype == torch.long and got.shape == (3, 40, 50)
    for i, m in enumerate(mats):
        np.testing.assert_array_equal(got[i].numpy(), trimap_from_alpha(m, kernel=7))
        assert (got[i] == 1).any() and (got[i] == 2).any()


def test_pooling_and_opencv_paths_agree_on_a_batch_touching_every_border():
    """The accelerator path (max pooling) and the CPU path (OpenCV) must make the same targets, borders included:
    the CPU trains with one and the GPU with the other."""
    gen = torch.Generator().manual_seed(3)
    coarse = torch.rand(4, 1, 4, 6, generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(37, 53), mode="bilinear", align_corners=False)
    alpha = ((smooth - 0.4) * 5).clamp(0, 1)  # solid blobs with soft rims, and solid background
    alpha[0, 0, :8] = 1.0  # solid along the top edge: erosion must see foreground outside the frame
    alpha[1, 0, :, -2:] = 0.5  # soft right edge: dilation must see background outside
    pooled, opencv = _trimaps_pooling(alpha, 7), _trimaps_opencv(alpha, 7)
    assert opencv.dtype == pooled.dtype == torch.long and opencv.shape == (4, 37, 53)
    assert torch.equal(pooled, opencv)
    assert {0, 1, 2} <= set(opencv.unique().tolist())
    assert (opencv[0, 0] == 2).any()


def test_cell_trimap_is_area_fraction_of_each_class_with_replicated_padding():
    t = torch.zeros(1, 20, 24, dtype=torch.long)
    t[0, :8, :8] = 2
    t[0, :8, 8:12] = 1  # half of cell (0, 1) unknown
    t[0, 16:, 16:] = 2  # touches the bottom/right edges: the padding continues it
    soft = cell_trimap(t)
    assert soft.shape == (1, 3, 4, 4)  # 20x24 padded to 32x32
    torch.testing.assert_close(soft.sum(1), torch.ones(1, 4, 4))
    torch.testing.assert_close(soft[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(soft[0, :, 0, 1], torch.tensor([0.5, 0.5, 0.0]))
    torch.testing.assert_close(soft[0, :, 3, 3], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(soft[0, :, 3, 1], torch.tensor([1.0, 0.0, 0.0]))
    assert cell_trimap(t, size=(224, 224)).shape == (1, 3, 28, 28)  # the model's minimum padded side


def test_cell_alpha_is_area_mean_on_padded_grid():
    a = torch.zeros(1, 1, 17, 16)
    a[0, 0, :8, :4] = 1.0
    a[0, 0, 16, :] = 1.0  # last row: replicated into the padding rows 17..31
    c = cell_alpha(a)
    assert c.shape == (1, 1, 4, 2)
    assert c[0, 0, 0, 0].item() == pytest.approx(0.5)
    assert c[0, 0, 1, :].sum().item() == 0
    assert c[0, 0, 2, 0].item() == pytest.approx(1.0) and c[0, 0, 3, 1].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="smaller"):
        cell_alpha(a, size=(8, 16))


def test_train_batch_validates_shapes_and_moves():
    b, h, w = 2, 8, 12
    batch = TrainBatch(torch.rand(b, 3, h, w), torch.rand(b, 1, h, w), torch.rand(b, 3, h, w),
                       torch.rand(b, 3, h, w), torch.zeros(b, h, w, dtype=torch.long))
    moved = batch.to("cpu")
    assert moved.batch_size == 2 and moved.trimap.dtype == torch.long
    with pytest.raises(ValueError, match="alpha"):
        TrainBatch(torch.rand(b, 3, h, w), torch.rand(b, 1, h, w + 1), torch.rand(b, 3, h, w),
                   torch.rand(b, 3, h, w), torch.zeros(b, h, w, dtype=torch.long))
    with pytest.raises(ValueError, match="long"):
        TrainBatch(torch.rand(b, 3, h, w), torch.rand(b, 1, h, w), torch.rand(b, 3, h, w),
                   torch.rand(b, 3, h, w), torch.zeros(b, h, w))
