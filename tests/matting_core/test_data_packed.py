"""The packed training stream that feeds the default model: exact composites, every row filled, sane layers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from matting_core.data.packed import PackedCompositeStream, PackedMix, write_blob


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four people (an ellipse away from the borders, so all are pasteable), three scenes, two wallpapers,
    one person-free box, written in the layout of ``recipes/pack_data.py``."""
    out = tmp_path_factory.mktemp("pack")
    rng = np.random.default_rng(0)
    rgb, alpha, people = [], [], []
    for i in range(4):
        img = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
        a = np.zeros((120, 90), np.uint8)
        cv2.ellipse(a, (45, 60), (25, 40), 0, 0, 360, 255, -1)
        rgb.append(cv2.imencode(".jpg", img)[1].tobytes())
        alpha.append(cv2.imencode(".png", cv2.GaussianBlur(a, (5, 5), 0))[1].tobytes())
        people.append({"source": "test", "stem": str(i), "boxes": [[0, 0, 16]] if i == 0 else []})
    bgs = [cv2.imencode(".jpg", np.full((64, 64, 3), v, np.uint8))[1].tobytes() for v in (40, 90, 140, 190, 240)]
    index = {
        "people": people,
        "people_rgb": write_blob(out, "people_rgb", rgb),
        "people_alpha": write_blob(out, "people_alpha", alpha),
        "backgrounds": write_blob(out, "backgrounds", bgs),
        "background_kind": ["scene"] * 3 + ["wallpaper"] * 2,
    }
    (out / "index.json").write_text(json.dumps(index))
    return out


def _stream(pack: Path, **mix: float) -> PackedCompositeStream:
    return PackedCompositeStream(pack, size=64, batch_size=12, device="cpu", seed=3, canvas=128,
                                 mix=PackedMix(noise_std=0.0, blur=0.0, **mix))


def test_composites_are_exact_and_every_background_row_is_filled(pack: Path):
    stream = _stream(pack, scene=0.4, own_background=0.3, wallpaper=0.3, original_photo=0.0, second_person=0.5)
    for _ in range(3):
        b = stream.next_batch()
        assert b.image.shape == (12, 3, 64, 64) and b.alpha.shape == (12, 1, 64, 64) and b.trimap.shape == (12, 64, 64)
        torch.testing.assert_close(b.alpha * b.fg + (1 - b.alpha) * b.bg, b.image, atol=2e-3, rtol=0)
        # Each row got exactly one background kind, sampled only where it is used: none left empty.
        assert (b.bg.flatten(1).amax(1) > 0.05).all()
        assert (b.alpha.flatten(1).amax(1) > 0.5).all(), "a person is pasted into every composite"


def test_whole_photos_keep_their_own_background(pack: Path):
    b = _stream(pack, scene=0.0, own_background=0.0, wallpaper=0.0, original_photo=1.0).next_batch()
    torch.testing.assert_close(b.bg, b.image)  # no composite: the photo is its own background
    assert (b.alpha.flatten(1).amax(1) > 0.5).all()
    assert (b.image.flatten(1).std(1) > 0.05).all(), "the photo's noise texture, not an empty row"


def test_sampling_only_the_used_rows_equals_sampling_all_and_masking(pack: Path):
    stream = _stream(pack)
    src = stream.people[torch.tensor([0, 1, 2, 3, 0])]
    theta = stream._person_theta(torch.tensor([0, 1, 2, 3, 0]))
    use = torch.tensor([True, False, True, False, True])
    full = torch.where(use[:, None, None, None], stream._sample(src, theta), 0.0)
    torch.testing.assert_close(stream._sample_rows(use, src, theta), full)
    assert stream._sample_rows(torch.zeros(5, dtype=torch.bool), src, theta).abs().sum() == 0
