"""MattingEngine and checkpoints: frames in, alpha out; safe, self-describing weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from matting_core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_config,
    read_extra,
    read_metadata,
    save_checkpoint,
)
from matting_core.engine import EngineOptions, MattingEngine, as_rgb_frame
from matting_core.flops import frame_gflops


def test_checkpoint_round_trip_is_bit_identical(tiny_model, tiny_cfg, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    assert (tmp_path / "m.json").is_file()
    assert read_config(path) == tiny_cfg
    loaded, cfg = load_checkpoint(path)
    assert cfg == tiny_cfg
    x = torch.rand(1, 3, 224, 240)
    with torch.no_grad():
        a, b = tiny_model(x, region_budget=20), loaded(x, region_budget=20)
    assert torch.equal(a.alpha, b.alpha)


def test_engine_takes_config_and_training_size_from_one_header(tiny_model, tiny_cfg, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors", extra={"size": 448, "step": 3})
    meta = read_metadata(path)
    assert read_config(path, meta) == tiny_cfg and read_extra(path, meta) == {"size": 448, "step": 3}
    engine = MattingEngine.load(path)
    assert engine.train_size == 448 and engine.effective_coarse_scale(896, 1200) == 0.5


def test_engine_mattes_frames_of_any_size_and_channel_order(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    engine = MattingEngine.load(path, EngineOptions(region_budget=30))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (231, 257, 3), dtype=np.uint8)
    res = engine.matte_detailed(frame, "rgb")
    assert res.alpha.shape == (231, 257) and res.alpha.dtype == np.float32
    assert res.trimap.shape == res.coarse_alpha.shape and res.regions.shape == (30, 2)
    assert set(res.timings_ms) >= {"coarse", "knn", "refine", "total"}
    np.testing.assert_array_equal(engine.matte(frame[:, :, ::-1], "bgr"), res.alpha)
    assert engine.is_trained


def test_engine_cra_switch_reaches_the_model(tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.refiner.cra.bias.table.normal_()
    engine = MattingEngine(tiny_model, EngineOptions(region_budget=30))
    frame = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    with_cra = engine.matte(frame)
    engine.use_cra = False
    assert not np.array_equal(engine.matte(frame), with_cra)


def test_bad_frames_get_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        as_rgb_frame(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        as_rgb_frame(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(TypeError):
        as_rgb_frame([[1, 2, 3]])
    gray = as_rgb_frame(np.full((10, 12), 7, np.uint8))
    assert gray.shape == (10, 12, 3) and int(gray.max()) == 7
    assert as_rgb_frame(np.ones((9, 9, 4), np.float32)).dtype == np.uint8


def test_corrupt_or_wrong_weights_are_reported_by_file_name(tmp_path, tiny_model):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="corrupt.safetensors.*not a readable safetensors"):
        MattingEngine.load(bad)
    with pytest.raises(CheckpointError, match="not found"):
        MattingEngine.load(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(CheckpointError, match="other.safetensors"):
        load_checkpoint(other)
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    state = dict(__import__("safetensors.torch", fromlist=["load_file"]).load_file(str(path)))
    state.pop(next(iter(state)))
    save_file(state, str(tmp_path / "m.safetensors"), metadata={"mattecam.model_config": tiny_model.cfg.to_json()})
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_cuda_request_falls_back_to_cpu_with_a_message(tiny_model):
    if torch.cuda.is_available():
        pytest.skip("machine has CUDA")
    engine = MattingEngine(tiny_model, EngineOptions(device="cuda", precision="fp16"))
    assert engine.device.type == "cpu" and engine.precision == "fp32"
    assert any("CUDA is not available" in n for n in engine.notes)


def test_flops_grow_with_regions_and_with_cra(tiny_model):
    x = torch.rand(1, 3, 224, 224)
    few = frame_gflops(tiny_model, x, use_cra=True, region_budget=10)
    many = frame_gflops(tiny_model, x, use_cra=True, region_budget=100)
    off = frame_gflops(tiny_model, x, use_cra=False, region_budget=100)
    assert few.regions == 10 and many.regions == 100
    assert few.coarse_gflops == pytest.approx(many.coarse_gflops)
    assert many.refine_gflops == pytest.approx(10 * few.refine_gflops, rel=0.05)
    assert off.refine_gflops < many.refine_gflops
    assert many.paper_gflops == pytest.approx(many.total_gflops / 2)


def test_coarse_scale_follows_the_training_size_the_checkpoint_records(tiny_model, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors", extra={"size": 256})
    auto = MattingEngine.load(path)
    assert auto.train_size == 256
    assert auto.effective_coarse_scale(512, 1024) == pytest.approx(0.5)
    assert auto.effective_coarse_scale(200, 300) == 1.0  # never upscales
    fixed = MattingEngine.load(path, EngineOptions(coarse_scale=1.0))
    assert fixed.effective_coarse_scale(512, 1024) == 1.0
    plain = MattingEngine.load(save_checkpoint(tiny_model, tmp_path / "p.safetensors"))
    assert plain.effective_coarse_scale(512, 1024) == 1.0  # no recorded size: the paper's full-frame pass
    frame = np.random.default_rng(0).integers(0, 256, (512, 600, 3), dtype=np.uint8)
    assert auto.matte(frame).shape == (512, 600)
    with pytest.raises(ValueError, match="coarse_scale"):
        EngineOptions(coarse_scale=2.0)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_clear_background_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="clear_background"):
        EngineOptions(clear_background=value)


@pytest.mark.parametrize("value", [0.0, -0.5, 1.2])
def test_fill_foreground_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="fill_foreground"):
        EngineOptions(fill_foreground=value)
