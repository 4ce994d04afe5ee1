"""Checkpoint averaging (recipes/average_checkpoints.py): the mean of the weights, one architecture only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from matting_core.checkpoint import CheckpointError, load_checkpoint, read_extra, save_checkpoint
from matting_core.config import ModelConfig
from matting_core.model import PortraitMattingModel

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "average_checkpoints.py"
TINY = {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4)}


def _recipe():
    spec = importlib.util.spec_from_file_location("average_checkpoints", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _saved(tmp_path: Path, name: str, seed: int, step: int, **cfg) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(PortraitMattingModel(ModelConfig(**{**TINY, **cfg})), tmp_path / name, extra={"step": step})


def test_the_average_is_the_mean_of_the_weights_and_records_its_sources(tmp_path, monkeypatch):
    a, b = _saved(tmp_path, "a.safetensors", 0, 10), _saved(tmp_path, "b.safetensors", 1, 20)
    out = tmp_path / "avg.safetensors"
    monkeypatch.setattr(sys, "argv", ["average_checkpoints", str(a), str(b), "--out", str(out)])
    _recipe().main()
    sa, sb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    avg = load_checkpoint(out)[0].state_dict()
    key = "refiner.cra.table" if "refiner.cra.table" in avg else next(k for k in avg if k.endswith("weight"))
    assert not torch.equal(sa[key], sb[key])
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, ((sa[k] + sb[k]) / 2).half().float(), atol=0, rtol=0)
    extra = read_extra(out)
    assert extra["step"] == 20 and [s["step"] for s in extra["averaged"]] == [10, 20]


def test_checkpoints_of_different_architectures_are_refused(tmp_path):
    a = _saved(tmp_path, "a.safetensors", 0, 1)
    b = _saved(tmp_path, "b.safetensors", 0, 1, knn_k=4)
    with pytest.raises(CheckpointError, match="different architecture"):
        _recipe().average([a, b])
