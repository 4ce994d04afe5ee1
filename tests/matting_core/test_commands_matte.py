"""``mattecam matte``: 8-bit alpha PNGs per image, background clearing and foreground filling on by default,
clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from matting_core.checkpoint import save_checkpoint
from matting_core.cli import main


@pytest.fixture
def background_ckpt(tiny_model, tmp_path):
    """The tiny model with its trimap head biased to "background" everywhere (pixel shuffle: output class c
    reads input channels 4c..4c+3), so clearing has cells to act on whatever the random weights are."""
    with torch.no_grad():
        tiny_model.coarse.head8.trimap.conv.bias[:4] += 20.0
    return save_checkpoint(tiny_model, tmp_path / "bg.safetensors")


@pytest.fixture
def foreground_ckpt(tiny_model, tmp_path):
    """The tiny model with its trimap head biased to "foreground" everywhere (class 2 reads channels 8..11)."""
    with torch.no_grad():
        tiny_model.coarse.head8.trimap.conv.bias[8:12] += 20.0
    return save_checkpoint(tiny_model, tmp_path / "fg.safetensors")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in" / "person.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (96, 136, 3), dtype=np.uint8))
    return path


def _matte(photo, ckpt, out, *extra) -> np.ndarray:
    assert main(["matte", str(photo), "-o", str(out), "--model", str(ckpt), *extra]) == 0
    alpha = cv2.imread(str(out / "person.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (96, 136) and alpha.dtype == np.uint8
    return alpha


def test_clearing_zeroes_faint_background_and_zero_turns_it_off(background_ckpt, photo, tmp_path):
    plain = _matte(photo, background_ckpt, tmp_path / "plain", "--clear-background", "0")
    strict = _matte(photo, background_ckpt, tmp_path / "strict", "--clear-background", "0.99")
    default = _matte(photo, background_ckpt, tmp_path / "default")
    assert (plain > 0).mean() > 0.9  # the plain paste keeps the coarse sigmoid everywhere
    assert np.all((strict == 0) | (strict >= 252))  # every cell is background: only values >= 0.99 survive
    faint, kept = plain < 0.3 * 255 - 1, plain > 0.3 * 255 + 1  # 1 level off the threshold: 8-bit rounding
    assert np.all(default[faint] == 0) and np.array_equal(default[kept], plain[kept])


@pytest.mark.parametrize("value", ["1.5", "-0.2"])
def test_clear_background_out_of_range_is_a_clear_error(background_ckpt, photo, tmp_path, capsys, value):
    assert main(["matte", str(photo), "-o", str(tmp_path / "o"), "--model", str(background_ckpt),
                 "--clear-background", value]) == 1
    assert "clear_background must be in [0, 1)" in capsys.readouterr().err


def test_filling_stretches_foreground_cells_and_one_turns_it_off(foreground_ckpt, photo, tmp_path):
    plain = _matte(photo, foreground_ckpt, tmp_path / "plain", "--fill-foreground", "1").astype(np.float32)
    default = _matte(photo, foreground_ckpt, tmp_path / "default").astype(np.float32)
    half = _matte(photo, foreground_ckpt, tmp_path / "half", "--fill-foreground", "0.5").astype(np.float32)
    assert (plain < 250).mean() > 0.5  # the random model is far from opaque: filling has work to do
    # every cell is foreground: alpha / T, clipped to 1 (1.5 levels of slack: 8-bit rounding on both sides)
    assert np.abs(default - np.minimum(plain / 0.8, 255)).max() <= 1.5
    assert np.abs(half - np.minimum(plain / 0.5, 255)).max() <= 2.5
    assert (half == 255).mean() > (default == 255).mean()


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_fill_foreground_out_of_range_is_a_clear_error(foreground_ckpt, photo, tmp_path, capsys, value):
    assert main(["matte", str(photo), "-o", str(tmp_path / "o"), "--model", str(foreground_ckpt),
                 "--fill-foreground", value]) == 1
    assert "fill_foreground must be in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["2", "-0.1"])
def test_drop_islands_out_of_range_is_a_clear_error(background_ckpt, photo, tmp_path, capsys, value):
    assert main(["matte", str(photo), "-o", str(tmp_path / "o"), "--model", str(background_ckpt),
                 "--drop-islands", value]) == 1
    assert "drop_islands must be in [0, 1]" in capsys.readouterr().err


def test_an_unreadable_image_is_reported_and_the_rest_still_matted(background_ckpt, photo, tmp_path, capsys):
    bad = photo.parent / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["matte", str(photo.parent), "-o", str(tmp_path / "o"), "--model", str(background_ckpt)]) == 1
    assert (tmp_path / "o" / "person.png").is_file()
    assert "broken.jpg: not a readable image, skipped" in capsys.readouterr().err
