"""Metrics pinned on hand-computed cases (benchmark scaling: SAD/Conn /1000, Grad /10)."""

import numpy as np
import pytest

from matting_core.metrics import (
    benchmark_trimap,
    conn,
    evaluate_pair,
    grad,
    iou,
    mad,
    mean_metrics,
    mse,
    sad,
    sad_by_trimap,
    sad_t,
)


def test_sad_sums_absolute_error_over_the_image_divided_by_1000():
    gt = np.zeros((10, 10))
    gt[:5] = 1.0
    assert sad(np.zeros((10, 10)), gt) == pytest.approx(0.05)
    assert sad(np.full((20, 50), 0.5), np.zeros((20, 50))) == pytest.approx(0.5)


def test_uint8_inputs_are_scaled_to_unit_range():
    assert sad(np.full((10, 100), 255, np.uint8), np.zeros((10, 100), np.uint8)) == pytest.approx(1.0)


def test_mse_and_mad_are_whole_image_means():
    p = np.zeros((4, 4))
    g = np.zeros((4, 4))
    g[0] = 0.5
    assert mse(p, g) == pytest.approx(0.0625)
    assert mad(p, g) == pytest.approx(0.125)


def test_sad_t_forces_known_trimap_areas_then_sums_everywhere():
    gt = np.array([[0.0, 0.5, 1.0, 0.2]])
    pred = np.array([[0.3, 0.7, 0.4, 0.4]])
    trimap = np.array([[0, 128, 255, 255]], np.uint8)
    # forced prediction [0, 0.7, 1, 1] -> |diff| = 0 + 0.2 + 0 + 0.8
    assert sad_t(pred, gt, trimap) == pytest.approx(1.0 / 1000)


def _gauss_kernels(sigma: float = 1.4, radius: int = 6) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k0 = np.exp(-0.5 * x**2 / sigma**2)
    k0 /= k0.sum()
    return k0, -x / sigma**2 * k0


def test_sad_by_trimap_says_where_the_error_sits_and_sums_to_sad():
    gt = np.zeros((10, 10))
    gt[:, 5:] = 1.0
    tri = np.zeros((10, 10), np.uint8)
    tri[:, 4:6] = 128
    tri[:, 6:] = 255
    pred = gt.copy()
    pred[0, 0] = 1.0  # scenery kept as person: 1 pixel
    pred[:2, 8] = 0.0  # a hole in the person: 2 pixels
    pred[:, 4] = 0.5  # a soft edge where the truth is hard: 10 pixels x 0.5
    split = sad_by_trimap(pred, gt, tri)
    assert split == pytest.approx({"background": 0.001, "unknown": 0.005, "foreground": 0.002})
    assert sum(split.values()) == pytest.approx(sad(pred, gt))
    # the edge share is what SAD-T counts when the ground truth is exactly 0/1 outside the band
    assert split["unknown"] == pytest.approx(sad_t(pred, gt, tri))


def test_grad_of_an_impulse_matches_the_closed_form():
    gt = np.zeros((21, 21))
    gt[10, 10] = 1.0
    k0, k1 = _gauss_kernels()
    # gx(y, x) = k0(y) k1(x), gy = k1(y) k0(x): sum of squared magnitudes = 2 * sum(k0^2) * sum(k1^2)
    expected = 2 * (k0**2).sum() * (k1**2).sum() / 10
    assert grad(np.zeros_like(gt), gt) == pytest.approx(expected, rel=1e-5)
    assert grad(gt, gt) == 0.0


def test_grad_ignores_a_constant_offset_and_scales_quadratically():
    rng = np.random.default_rng(1)
    g = rng.uniform(0.2, 0.7, (16, 16))
    assert grad(g + 0.1, g) == pytest.approx(0.0, abs=1e-9)
    base = grad(np.zeros_like(g), g)
    assert grad(np.zeros_like(g), g / 2) == pytest.approx(base / 4, rel=1e-5)


def test_conn_of_a_hole_inside_the_main_component():
    gt = np.ones((4, 4))
    pred = np.ones((4, 4))
    pred[1, 1] = 0.0  # drops out at t = 0.1: level 0, phi_pred = 1, phi_gt = 1 - (1 - 0) = 0
    assert conn(pred, gt) == pytest.approx(1 / 1000)
    pred[1, 1] = 0.5  # drops out at t = 0.6: level 0.5, phi_pred = 1, phi_gt = 1 - 0.5
    assert conn(pred, gt) == pytest.approx(0.5 / 1000)
    assert conn(gt, gt) == 0.0


def test_conn_penalises_a_missing_detached_blob():
    gt = np.array([[1.0, 1.0, 1.0, 0.0, 1.0]])
    assert conn(gt, gt) == 0.0
    pred = np.array([[1.0, 1.0, 1.0, 0.0, 0.0]])
    assert conn(pred, gt) == pytest.approx(1 / 1000)


def test_iou_at_half():
    p = np.array([[0.6, 0.4, 0.9, 0.0]])
    g = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert iou(p, g) == pytest.approx(1 / 3)
    assert iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


def test_benchmark_trimap_marks_the_band_around_the_edge():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 5:15] = 255
    t = benchmark_trimap(gt, kernel=3)
    assert set(np.unique(t)) == {0, 128, 255}
    assert t[10, 10] == 255 and t[0, 0] == 0
    assert t[5, 10] == 128 and t[4, 10] == 128 and t[3, 10] == 0


def test_evaluate_pair_and_means():
    gt = np.zeros((8, 8))
    gt[2:6, 2:6] = 1.0
    row = evaluate_pair(gt, gt, benchmark_trimap(gt, kernel=3))
    assert row["SAD"] == 0 and row["SAD-T"] == 0 and row["Conn"] == 0 and row["IoU"] == 1
    rows = [{"SAD": 1.0, "IoU": 0.5}, {"SAD": 3.0, "IoU": 1.0, "SAD-T": 2.0}]
    assert mean_metrics(rows) == {"SAD": 2.0, "IoU": 0.75}


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="differ in size"):
        sad(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sad(np.full((2, 2), 3.0), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="single-channel"):
        sad(np.zeros((2, 2, 2, 2)), np.zeros((2, 2)))
