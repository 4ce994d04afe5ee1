"""Checkpoint averaging (recipes/average_checkpoints.py): the mean of the weights, one architecture only."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from matting_core.checkpoint import CheckpointError, load_checkpoint, read_extra, save_checkpoint
from matting_core.config import ModelConfig
from matting_core.model import PortraitMattingModel


def _saved(tmp_path: Path, cfg: ModelConfig, name: str, seed: int, step: int) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(PortraitMattingModel(cfg), tmp_path / name, extra={"step": step})


def test_the_average_is_the_mean_of_the_weights_and_records_its_sources(tmp_path, tiny_cfg, load_recipe, monkeypatch):
    a, b = _saved(tmp_path, tiny_cfg, "a.safetensors", 0, 10), _saved(tmp_path, tiny_cfg, "b.safetensors", 1, 20)
    out = tmp_path / "avg.safetensors"
    monkeypatch.setattr(sys, "argv", ["average_checkpoints", str(a), str(b), "--out", str(out)])
    load_recipe("average_checkpoints").main()
    sa, sb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    avg = load_checkpoint(out)[0].state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())  # two different models
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, ((sa[k] + sb[k]) / 2).half().float(), atol=0, rtol=0)
    extra = read_extra(out)
    assert extra["step"] == 20 and [s["step"] for s in extra["averaged"]] == [10, 20]


def test_checkpoints_of_different_architectures_are_refused(tmp_path, tiny_cfg, load_recipe):
    a = _saved(tmp_path, tiny_cfg, "a.safetensors", 0, 1)
    b = _saved(tmp_path, replace(tiny_cfg, knn_k=4), "b.safetensors", 0, 1)
    with pytest.raises(CheckpointError, match="different architecture"):
        load_recipe("average_checkpoints").average([a, b])


def test_weights_make_a_weighted_mean_and_are_recorded(tmp_path, tiny_cfg, load_recipe, monkeypatch):
    a, b = _saved(tmp_path, tiny_cfg, "a.safetensors", 0, 10), _saved(tmp_path, tiny_cfg, "b.safetensors", 1, 20)
    out = tmp_path / "w.safetensors"
    monkeypatch.setattr(sys, "argv", ["average_checkpoints", str(a), str(b), "--weights", "3", "1", "--out", str(out)])
    load_recipe("average_checkpoints").main()
    sa, sb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    avg = load_checkpoint(out)[0].state_dict()
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (0.75 * sa[k] + 0.25 * sb[k]).half().float(), atol=1e-3, rtol=1e-3)
    assert [s["weight"] for s in read_extra(out)["averaged"]] == [0.75, 0.25]


def test_a_weight_per_checkpoint_is_required(tmp_path, tiny_cfg, load_recipe, monkeypatch, capsys):
    a, b = _saved(tmp_path, tiny_cfg, "a.safetensors", 0, 10), _saved(tmp_path, tiny_cfg, "b.safetensors", 1, 20)
    monkeypatch.setattr(sys, "argv", ["average_checkpoints", str(a), str(b), "--weights", "1", "--out", "x"])
    with pytest.raises(SystemExit):
        load_recipe("average_checkpoints").main()
    assert "one non-negative weight per checkpoint (2)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not all 0"):
        load_recipe("average_checkpoints").average([a, b], [0, 0])
