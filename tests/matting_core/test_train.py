"""Trainer: a CI-sized run whose loss falls, resume at the saved step, Ctrl-C saves, configs validate."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from matting_core import train as train_mod
from matting_core.train import (
    STATE_FILE,
    TrainConfig,
    TrainConfigError,
    load_train_config,
    train,
    with_overrides,
)

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.toml"


def _smoke(tmp_path: Path, steps: int = 16) -> TrainConfig:
    cfg = with_overrides(load_train_config(SMOKE), run_dir=str(tmp_path / "run"), steps=steps)
    return replace(cfg, checkpoint=replace(cfg.checkpoint, every=4))


def test_smoke_run_loss_falls_resumes_at_its_step_and_loads_in_the_engine(tmp_path):
    from matting_core.engine import MattingEngine

    torch.manual_seed(0)
    cfg = _smoke(tmp_path)
    first = train(cfg, stop_after=8, progress=False)  # a run that stops half way (as after a crash)
    assert first.step == 8 and not first.interrupted and first.final_checkpoint is None
    state = torch.load(Path(cfg.run_dir) / STATE_FILE, weights_only=True)
    assert state["step"] == 8 and state["checkpoint"] == "step_00000008.safetensors"

    second = train(cfg, progress=False)  # same command again: continues at step 8
    assert len(second.losses) == 8 and second.step == 16
    with open(Path(cfg.run_dir) / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    losses = [float(r["total"]) for r in rows]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses

    assert second.final_checkpoint is not None and second.final_checkpoint.is_file()
    engine = MattingEngine.load(second.final_checkpoint)
    alpha = engine.matte(np.full((96, 128, 3), 120, np.uint8))
    assert alpha.shape == (96, 128) and np.isfinite(alpha).all()
    assert (Path(cfg.run_dir) / "val.csv").is_file() and list((Path(cfg.run_dir) / "val").glob("*.png"))
    kept = sorted(p.name for p in (Path(cfg.run_dir) / "checkpoints").glob("*.safetensors"))
    assert kept == ["step_00000012.safetensors", "step_00000016.safetensors"]  # keep = 2

    again = train(cfg, progress=False)  # already finished: nothing to do
    assert again.step == 16 and again.losses == []


def test_ctrl_c_saves_a_resumable_state(tmp_path, monkeypatch):
    real_stream = train_mod.train_stream

    def interrupting_stream(*args, **kwargs):
        for i, batch in enumerate(real_stream(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(train_mod, "train_stream", interrupting_stream)
    cfg = _smoke(tmp_path, steps=10)
    result = train(cfg, progress=False)
    assert result.interrupted and result.step == 2
    state = torch.load(Path(cfg.run_dir) / STATE_FILE, weights_only=True)
    assert state["step"] == 2 and (Path(cfg.run_dir) / "checkpoints" / state["checkpoint"]).is_file()
    assert len(state["optimizer"]["state"]) > 0  # Adam moments saved


def test_config_files_load_and_bad_settings_are_named(tmp_path):
    root = SMOKE.parent
    for name in ("smoke.toml", "p3m.toml", "people_rvm.toml"):
        cfg = load_train_config(root / name)
        assert cfg.optim.lr > 0
    p3m = load_train_config(root / "p3m.toml")
    assert p3m.augment.size == 896 and p3m.optim.lr == 1e-4 and p3m.data.layout == "p3m"
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps({"data": {"kind": "synthetic"}, "optim": {"steps": 3}}))
    assert load_train_config(as_json).optim.steps == 3
    as_json.write_text(json.dumps({"optim": {"step": 3}}))
    with pytest.raises(TrainConfigError, match=r"unknown setting.*\[optim\]"):
        load_train_config(as_json)
    as_json.write_text(json.dumps({"model": {"embed_dim": 25}}))
    with pytest.raises(TrainConfigError, match="heads"):
        load_train_config(as_json)
    with pytest.raises(TrainConfigError, match="not found"):
        load_train_config(tmp_path / "missing.toml")


def test_folder_training_without_root_is_a_clear_error(tmp_path):
    cfg = TrainConfig(run_dir=str(tmp_path / "r"))
    with pytest.raises(TrainConfigError, match="data.root"):
        train(cfg, progress=False)


def test_lr_schedule_steps_down_at_milestones():
    o = train_mod.OptimConfig(lr=1e-4, milestones=(10, 20), gamma=0.1)
    assert o.lr_at(0) == 1e-4 and o.lr_at(10) == pytest.approx(1e-5) and o.lr_at(25) == pytest.approx(1e-6)


def test_init_from_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    from matting_core.checkpoint import CheckpointError, save_checkpoint
    from matting_core.config import ModelConfig
    from matting_core.model import PortraitMattingModel

    other = ModelConfig(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2))
    ckpt = save_checkpoint(PortraitMattingModel(other), tmp_path / "other.safetensors")
    cfg = replace(_smoke(tmp_path), init=str(ckpt))
    with pytest.raises(CheckpointError, match="do not fit"):
        train(cfg, progress=False)
