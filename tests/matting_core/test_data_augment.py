"""Augmentation and compositing: consistent warps, matting equation, cut edges anchored, fg cache."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from matting_core.data import composite as composite_mod
from matting_core.data.augment import AugmentConfig, anchor_cut_edges, augment_sample, touching_sides
from matting_core.data.composite import ForegroundCache, estimate_fg_bg, list_backgrounds
from matting_core.data.datasets import DatasetError, scan_dataset
from matting_core.data.loaders import FolderCompositeDataset, SyntheticDataset

QUIET = AugmentConfig(size=64, blur_prob=0, noise_prob=0, jpeg_prob=0, original_bg_prob=0.0)


def _person(h=80, w=60):
    alpha = np.zeros((h, w), np.float32)
    cv2.circle(alpha, (w // 2, h // 3), 12, 1.0, -1)
    alpha[h // 2 :, 10 : w - 10] = 1.0  # body reaching the bottom edge
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    fg = np.zeros((h, w, 3), np.float32)
    fg[...] = (0.9, 0.2, 0.1)
    bg = np.zeros((h, w, 3), np.float32)
    bg[...] = (0.1, 0.3, 0.8)
    photo = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return photo, alpha, fg, bg


def test_composite_samples_obey_the_matting_equation_and_have_targets():
    photo, alpha, fg, bg = _person()
    rng = np.random.default_rng(0)
    new_bg = np.random.default_rng(1).uniform(0, 1, (64, 64, 3)).astype(np.float32)
    out = augment_sample(photo, alpha, fg, bg, new_bg, QUIET, rng)
    assert out["image"].shape == (64, 64, 3) and out["alpha"].shape == (64, 64)
    a = out["alpha"][..., None]
    np.testing.assert_allclose(out["image"], a * out["fg"] + (1 - a) * out["bg"], atol=1e-5)
    assert out["alpha"].min() >= 0 and out["alpha"].max() <= 1
    assert set(np.unique(out["trimap"])) <= {0, 1, 2} and (out["trimap"] == 1).any()


def test_original_photo_mode_keeps_the_photo_consistent_with_its_fg_and_bg():
    photo, alpha, fg, bg = _person()
    cfg = replace(QUIET, original_bg_prob=1.0, brightness=0, contrast=0, saturation=0, hue=0)
    out = augment_sample(photo, alpha, fg, bg, None, cfg, np.random.default_rng(3))
    a = out["alpha"][..., None]
    np.testing.assert_allclose(out["image"], a * out["fg"] + (1 - a) * out["bg"], atol=2e-3)


def test_person_cut_by_the_bottom_edge_still_reaches_the_frame_bottom_when_zoomed_out():
    photo, alpha, fg, bg = _person()
    assert touching_sides(alpha) == {"top": False, "bottom": True, "left": False, "right": False}
    cfg = replace(QUIET, scale=(0.4, 0.4), translate=0.2)
    for seed in range(5):
        out = augment_sample(photo, alpha, fg, bg, np.zeros((64, 64, 3), np.float32), cfg,
                             np.random.default_rng(seed))
        assert out["alpha"][-1].max() > 0.9, seed
        assert out["alpha"][0].max() < 0.01  # and the head is not pushed out of the top


def test_anchor_moves_a_bottom_border_down_to_the_frame_edge():
    m = np.array([[0.5, 0, 10], [0, 0.5, 5]], np.float64)  # 100x100 photo -> 50x50 content at (10, 5)
    out = anchor_cut_edges(m, (100, 100), 64, {"bottom": True})
    # the photo's bottom border (y = 99.5 in pixel-centre coordinates) lands on the frame's (63.5)
    assert 0.5 * 99.5 + out[1, 2] == pytest.approx(63.5)
    assert out[0, 2] == 10  # x untouched


def test_flip_mirrors_everything_together():
    photo, alpha, fg, bg = _person(64, 64)
    alpha[:, :20] = 0  # make it asymmetric
    cfg = replace(QUIET, flip_prob=1.0, scale=(1, 1), aspect=(1, 1), rotate_deg=0, shear_deg=0, translate=0,
                  original_bg_prob=1.0, brightness=0, contrast=0, saturation=0, hue=0)
    out = augment_sample(photo, alpha, fg, bg, None, cfg, np.random.default_rng(0))
    np.testing.assert_allclose(out["alpha"], alpha[:, ::-1], atol=1e-4)


def test_augment_config_rejects_bad_values():
    with pytest.raises(ValueError, match="multiple of 16"):
        AugmentConfig(size=100)
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(jpeg_prob=2)
    from matting_core.train import TrainConfig, TrainConfigError

    with pytest.raises(TrainConfigError, match=r"unknown setting.*sise.*\[augment\]"):
        TrainConfig.from_dict({"augment": {"sise": 64}})
    with pytest.raises(TrainConfigError, match=r"\[augment\]: .*multiple of 16"):
        TrainConfig.from_dict({"augment": {"size": 100}})
    assert TrainConfig.from_dict({"augment": {"scale": [0.5, 1.0]}}).augment.scale == (0.5, 1.0)


def test_foreground_estimation_removes_the_old_background_and_is_cached(tmp_path, monkeypatch):
    photo, alpha, fg, bg = _person()
    rgb8 = np.round(photo * 255).astype(np.uint8)
    est_fg, est_bg = estimate_fg_bg(rgb8, alpha)
    soft = (alpha > 0.2) & (alpha < 0.8)
    assert soft.any()
    assert np.abs(est_fg[soft] - fg[soft]).max() < 0.05  # pure red where the photo is a red/blue mix
    assert np.abs(est_bg[soft] - bg[soft]).max() < 0.05

    img_path, a_path = tmp_path / "p.png", tmp_path / "a.png"
    cv2.imwrite(str(img_path), rgb8)
    cv2.imwrite(str(a_path), np.round(alpha * 255).astype(np.uint8))
    calls = []
    real = composite_mod.estimate_fg_bg
    monkeypatch.setattr(composite_mod, "estimate_fg_bg", lambda *a: calls.append(1) or real(*a))
    cache = ForegroundCache(tmp_path / "cache")
    first = cache.get(img_path, a_path, rgb8, alpha)
    second = cache.get(img_path, a_path, rgb8, alpha)
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("*.png"))) == 2
    np.testing.assert_allclose(first[0], second[0], atol=1 / 255 + 1e-6)


def test_folder_dataset_skips_unreadable_files_and_yields_batches(tmp_path):
    photo, alpha, _, _ = _person()
    for name in ("a", "b"):
        (tmp_path / "image").mkdir(exist_ok=True)
        (tmp_path / "alpha").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "image" / f"{name}.png"), np.round(photo * 255).astype(np.uint8))
        cv2.imwrite(str(tmp_path / "alpha" / f"{name}.png"), np.round(alpha * 255).astype(np.uint8))
    (tmp_path / "image" / "a.png").write_bytes(b"broken")
    (tmp_path / "bg").mkdir()
    cv2.imwrite(str(tmp_path / "bg" / "wall.jpg"), np.full((30, 40, 3), 200, np.uint8))
    ds = FolderCompositeDataset(scan_dataset(tmp_path).samples, QUIET, list_backgrounds([tmp_path / "bg"]))
    torch.manual_seed(0)
    item = ds[0]  # a.png is broken: b is used instead
    assert item["image"].shape == (3, 64, 64) and item["trimap"].dtype == torch.long
    with pytest.raises(DatasetError, match="does not exist"):
        list_backgrounds([tmp_path / "missing"])


def test_synthetic_samples_are_deterministic_when_fixed():
    ds = SyntheticDataset(64, 3, seed=5, fixed=True)
    a, b = ds[1], ds[1]
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], ds[2]["image"])
    assert (a["trimap"] == 1).any() and (a["trimap"] == 2).any()
