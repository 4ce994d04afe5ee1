"""The default model's training recipe: resumes from a checkpoint; --stage coarse leaves the refiner as is and
--stage refine the coarse network."""

from __future__ import annotations

import sys

import pytest
import torch

from matting_core.checkpoint import load_checkpoint, read_extra, save_checkpoint
from matting_core.model import PortraitMattingModel


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> list[str]:
    """Parameters under ``prefix`` that differ beyond the fp16 rounding of the saved file."""
    return [k for k, v in before.items() if k.startswith(prefix) and not torch.equal(v.half().float(), after[k])]


@pytest.mark.parametrize("stage", ["coarse", "refine", "all"])
def test_a_short_run_continues_the_checkpoint_and_trains_what_its_stage_says(
    stage, tiny_pack, tiny_cfg, load_recipe, tmp_path, monkeypatch
):
    torch.manual_seed(0)
    model = PortraitMattingModel(tiny_cfg)
    init = save_checkpoint(model, tmp_path / "init.safetensors", extra={"step": 7})
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    out = tmp_path / "out.safetensors"
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(out), "--init", str(init), "--minutes", "5",
            "--max-steps", "2", "--size", "64", "--batch", "2", "--budget", "8", "--lr", "1e-2", "--warmup", "1",
            "--profile", "0", "--fp32", "--stage", stage]
    monkeypatch.setattr(sys, "argv", argv)
    load_recipe("train_default").main()

    extra = read_extra(out)
    assert extra["step"] == 9 and extra["stage"] == stage and extra["size"] == 64  # the schedule continued
    after = load_checkpoint(out)[0].state_dict()
    coarse_changed, refiner_changed = _changed(before, after, "coarse."), _changed(before, after, "refiner.")
    if stage == "refine":
        assert coarse_changed == [], "a refine-only run must leave the coarse network's weights alone"
    else:
        assert coarse_changed
    if stage == "coarse":
        assert refiner_changed == [], "a coarse-only run must leave the refiner's weights and statistics alone"
    else:
        assert refiner_changed
    assert out.with_suffix(".batch.jpg").is_file()  # the preview of the last batch


def test_keep_snapshots_leaves_one_file_per_periodic_save(tiny_pack, tiny_cfg, load_recipe, tmp_path, monkeypatch):
    init = save_checkpoint(PortraitMattingModel(tiny_cfg), tmp_path / "init.safetensors", extra={"step": 7})
    out = tmp_path / "run.safetensors"
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(out), "--init", str(init), "--minutes", "5",
            "--max-steps", "2", "--size", "64", "--batch", "2", "--budget", "8", "--warmup", "1", "--profile", "0",
            "--fp32", "--stage", "coarse", "--save-every", "0", "--keep-snapshots"]
    monkeypatch.setattr(sys, "argv", argv)
    load_recipe("train_default").main()
    snaps = sorted(p.name for p in tmp_path.glob("run.step*.safetensors"))
    assert snaps == ["run.step8.safetensors", "run.step9.safetensors"]
    assert read_extra(tmp_path / "run.step8.safetensors")["step"] == 8


def test_frame_cut_cover_wide_share_and_oversample_reach_the_mix_and_the_checkpoint(tiny_pack, tiny_cfg, load_recipe, tmp_path, monkeypatch):
    init = save_checkpoint(PortraitMattingModel(tiny_cfg), tmp_path / "init.safetensors", extra={"step": 7})
    out = tmp_path / "run.safetensors"
    recipe = load_recipe("train_default")
    mixes, real = [], recipe.PackedCompositeStream

    def spy(*args, **kwargs):
        mixes.append(kwargs["mix"])
        return real(*args, **kwargs)

    monkeypatch.setattr(recipe, "PackedCompositeStream", spy)
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(out), "--init", str(init), "--minutes", "5",
            "--max-steps", "1", "--size", "64", "--batch", "2", "--budget", "8", "--warmup", "1", "--profile", "0",
            "--fp32", "--stage", "coarse", "--frame-cut", "--frame-cut-cover", "0.7", "--wide", "1",
            "--oversample", "test/1=3", "--oversample", "test/=1.5"]
    monkeypatch.setattr(sys, "argv", argv)
    recipe.main()
    assert [(m.frame_cut_people, m.frame_cut_max_cover, m.wide_share, m.oversample) for m in mixes] == [
        (True, 0.7, 1.0, (("test/1", 3.0), ("test/", 1.5)))]
    extra = read_extra(out)
    assert extra["frame_cut"] is True and extra["frame_cut_max_cover"] == 0.7 and extra["wide_share"] == 1.0
    assert extra["oversample"] == {"test/1": 3.0, "test/": 1.5}
    assert extra["samples_this_run"] == 2, "a 16:9 batch went through the coarse network and its loss"


@pytest.mark.parametrize("bad", ["0", "1.5", "lots"])
def test_a_frame_cut_cover_that_is_not_a_share_stops_before_set_up(bad, tiny_pack, load_recipe, tmp_path,
                                                                    monkeypatch, capsys):
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(tmp_path / "x.safetensors"), "--frame-cut",
            "--frame-cut-cover", bad]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        load_recipe("train_default").main()
    assert "--frame-cut-cover" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize(("flag", "bad", "message"), [("--empty", "1.5", "empty is a probability"),
                                                      ("--photos", "0.9", "whole-photo share"),
                                                      ("--wide", "1.5", "wide_share is a probability")])
def test_a_mix_share_out_of_range_stops_before_set_up(flag, bad, message, tiny_pack, load_recipe, tmp_path,
                                                       monkeypatch, capsys):
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(tmp_path / "x.safetensors"), flag, bad]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        load_recipe("train_default").main()
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize(("bad", "message"), [("with_mask", "KEY=WEIGHT"), ("with_mask=0", "KEY=WEIGHT"),
                                              ("=3", "KEY=WEIGHT"), ("with_mask=lots", "KEY=WEIGHT"),
                                              ("with_mask=3", "matches no packed person")])
def test_a_bad_oversample_stops_before_training(bad, message, tiny_pack, tiny_cfg, load_recipe, tmp_path,
                                                monkeypatch, capsys):
    """A malformed pair fails at parsing; a key that matches nobody in the pack (a typo) before any step."""
    init = save_checkpoint(PortraitMattingModel(tiny_cfg), tmp_path / "init.safetensors", extra={"step": 7})
    argv = ["train_default", "--pack", str(tiny_pack), "--out", str(tmp_path / "x.safetensors"), "--init", str(init),
            "--fp32", "--profile", "0", "--oversample", bad]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        load_recipe("train_default").main()
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
