"""`mattecam eval`: folder matching, hand-computed means in JSON, reports, and the model-over-dataset path."""

import argparse
import json

import cv2
import numpy as np
import pytest

from matting_core.commands import eval as eval_cmd
from matting_core.evaluate import fit_max_pixels, match_folders, score_folders


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


def _write(path, a):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), a)


@pytest.fixture
def folders(tmp_path):
    gt = np.zeros((20, 50), np.uint8)
    gt[:, :25] = 255
    _write(tmp_path / "gt" / "a.png", gt)
    _write(tmp_path / "pred" / "a.png", gt)  # perfect
    _write(tmp_path / "gt" / "b.png", np.zeros((20, 50), np.uint8))
    _write(tmp_path / "pred" / "b.png", np.full((20, 50), 255, np.uint8))  # every pixel wrong by 1
    _write(tmp_path / "pred" / "extra.png", gt)  # no ground truth
    _write(tmp_path / "images" / "a.jpg", np.full((20, 50, 3), 90, np.uint8))
    return tmp_path


def test_eval_folders_writes_hand_computed_means(folders, capsys):
    out = folders / "report"
    rc = _run(["--pred", str(folders / "pred"), "--gt", str(folders / "gt"), "--images", str(folders / "images"),
               "--json", str(folders / "m.json"), "--out", str(out)])
    assert rc == 0
    data = json.loads((folders / "m.json").read_text())
    assert data["count"] == 2
    # a: perfect; b: 1000 pixels off by 1 -> SAD 1.0, MSE 1, IoU 0 (pred all fg, gt empty)
    assert data["mean"]["SAD"] == pytest.approx(0.5)
    assert data["mean"]["MSE"] == pytest.approx(0.5)
    assert data["mean"]["IoU"] == pytest.approx(0.5)
    # generated trimap of an all-background GT is all background: SAD-T of b forces the prediction to 0
    assert data["mean"]["SAD-T"] == pytest.approx(0.0)
    shown = capsys.readouterr().out
    assert "SAD" in shown and "0.5000" in shown and "extra.png" in shown
    md = (out / "report.md").read_text()
    assert "worst.png" in md and "metrics.png" in md and "| b |" in md
    worst = cv2.imread(str(out / "worst.png"))
    assert worst is not None and worst.shape[0] > 2 * 20


def test_given_trimaps_are_used_for_sad_t(folders):
    t = np.full((20, 50), 128, np.uint8)
    _write(folders / "trimap" / "a.png", t)
    _write(folders / "trimap" / "b.png", t)
    report = score_folders(folders / "pred", folders / "gt", folders / "trimap")
    assert report.mean["SAD-T"] == pytest.approx(0.5)  # all unknown: SAD-T == SAD
    assert not any("generated" in n for n in report.notes)


def test_mismatched_sizes_are_resized_and_noted(folders):
    _write(folders / "pred" / "a.png", np.full((10, 25), 255, np.uint8))
    report = score_folders(folders / "pred", folders / "gt")
    assert any("resized" in n for n in report.notes)
    a = next(s for s in report.scores if s.name == "a")
    assert a.metrics["SAD"] == pytest.approx(0.5)  # right half wrong


def test_unmatched_and_unreadable_files_are_named(folders, capsys):
    (folders / "pred" / "b.png").write_bytes(b"not a png")
    items, problems = match_folders(folders / "pred", folders / "gt")
    assert {i.name for i in items} == {"a", "b"}
    assert any("extra.png" in p for p in problems)
    report = score_folders(folders / "pred", folders / "gt")
    assert len(report.scores) == 1 and any("b.png" in n for n in report.notes)
    (folders / "empty").mkdir()
    assert _run(["--pred", str(folders / "pred"), "--gt", str(folders / "empty")]) == 1
    assert "no prediction" in capsys.readouterr().err


def test_bad_argument_combinations_exit_2(folders):
    assert _run(["--pred", str(folders / "pred")]) == 2
    assert _run([]) == 2


def test_fit_max_pixels_keeps_aspect():
    assert fit_max_pixels(100, 200, None) == (100, 200)
    h, w = fit_max_pixels(2000, 4000, 2_000_000)
    assert h * w <= 2_000_000 and abs(w / h - 2) < 0.01


def test_eval_runs_a_checkpoint_over_a_dataset(tmp_path):
    import torch

    from matting_core.checkpoint import save_checkpoint
    from matting_core.config import ModelConfig
    from matting_core.model import PortraitMattingModel

    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4))
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(PortraitMattingModel(cfg), ckpt)
    for i in range(2):
        img = np.full((40, 48, 3), 40 * i, np.uint8)
        _write(tmp_path / "data" / "image" / f"p{i}.jpg", img)
        _write(tmp_path / "data" / "alpha" / f"p{i}.png", np.zeros((40, 48), np.uint8))
    out = tmp_path / "out"
    rc = _run(["--model", str(ckpt), "--data", str(tmp_path / "data"), "--out", str(out),
               "--json", str(out / "m.json"), "--max-pixels", "1000"])
    assert rc == 0
    data = json.loads((out / "m.json").read_text())
    assert data["count"] == 2 and np.isfinite(data["mean"]["SAD"])
    pred = cv2.imread(str(out / "pred" / "p0.png"), cv2.IMREAD_GRAYSCALE)
    assert pred.shape == (40, 48)  # upscaled back to the photo's size
    assert (out / "report.md").is_file()
    assert _run(["--model", str(ckpt), "--data", str(tmp_path / "data"), "--holdout", "0.000001"]) == 1
    assert _run(["--model", str(tmp_path / "missing.safetensors"), "--data", str(tmp_path / "data")]) == 1
