"""Engine loading falls back (missing model, no GPU, no ONNX export) and says so, instead of failing."""

from __future__ import annotations

import numpy as np
import pytest
from app_doubles import FakeEngine

from app.engine_loader import EngineRequest, FixedSizeEngine, load_engine

torch = pytest.importorskip("torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_model_gpu_and_onnx_requests_fall_back_to_a_working_cpu_engine(tmp_path):
    torch.set_num_threads(1)
    loaded = load_engine(EngineRequest(model_path=str(tmp_path / "gone.safetensors"), device="cuda",
                                       backend="onnxruntime", use_cra=False))
    text = "\n".join(loaded.messages)
    assert "GPU requested" in text and "running on the CPU" in text
    assert "gone.safetensors not found" in text
    assert "ONNX Runtime needs an exported model folder" in text
    assert loaded.description.startswith("cpu, torch")
    engine = loaded.engine
    assert engine.use_cra is False
    alpha = engine.matte(np.zeros((64, 96, 3), np.uint8), channels="bgr")
    assert alpha.shape == (64, 96) and alpha.dtype == np.float32


def test_corrupt_model_and_bad_onnx_folder_fall_back(tmp_path):
    torch.set_num_threads(1)
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    loaded = load_engine(EngineRequest(model_path=str(corrupt), backend="onnxruntime", onnx_dir=str(tmp_path)))
    text = "\n".join(loaded.messages)
    assert "bad.safetensors cannot be loaded" in text and "using the default model" in text
    assert "ONNX Runtime could not load" in text
    assert loaded.engine.weights_path is None or "bad" not in str(loaded.engine.weights_path)


def test_fixed_size_engine_resizes_in_and_out():
    inner = FakeEngine()
    engine = FixedSizeEngine(inner, 64, 48)
    alpha = engine.matte_detailed(np.zeros((120, 160, 3), np.uint8), "bgr").alpha
    assert inner.shapes[-1][:2] == (48, 64)
    assert alpha.shape == (120, 160)
    engine.use_cra = False
    assert inner.use_cra is False


def test_fixed_size_engine_passes_the_region_budget_through():
    inner = FakeEngine()
    engine = FixedSizeEngine(inner, 64, 48)
    assert engine.region_budget is None
    engine.region_budget = 300
    assert inner.region_budget == 300 and engine.region_budget == 300
    engine.matte_detailed(np.zeros((120, 160, 3), np.uint8), "bgr")
    assert inner.budgets_seen[-1] == 300


def test_fixed_size_engine_keeps_a_static_budgets_error():
    class StaticBudget(FakeEngine):
        def __setattr__(self, name, value):
            if name == "region_budget" and value not in (None, 128):
                raise ValueError("this export has a static region budget of 128")
            super().__setattr__(name, value)

    engine = FixedSizeEngine(StaticBudget(), 64, 48)
    with pytest.raises(ValueError, match="static region budget"):
        engine.region_budget = 500


def test_frame_processor_reports_the_export_size_as_model_size():
    from app.compositor import Compositor
    from app.processing import FrameProcessor

    inner = FakeEngine()
    result = FrameProcessor(FixedSizeEngine(inner, 64, 48), Compositor()).process(np.zeros((120, 160, 3), np.uint8))
    assert result.model_size == (64, 48)  # what the trimap grid refers to
    assert result.trimap.shape == (6, 8) and result.alpha.shape == (120, 160)


def test_adaptive_quality_on_a_fixed_size_engine_adjusts_only_the_budget():
    from app_doubles import FakeClock

    from app.compositor import Compositor
    from app.processing import FrameProcessor

    clock = FakeClock()
    inner = FakeEngine(clock=clock, cost_ms=500.0)  # hopelessly slow for 30 FPS
    processor = FrameProcessor(FixedSizeEngine(inner, 320, 240), Compositor(), target_fps=30, clock=clock)
    for i in range(40):
        result = processor.process(np.zeros((480, 640, 3), np.uint8), i)
    config = processor.adaptive.controller.config
    assert inner.budgets_seen[0] == config.max_budget and inner.budgets_seen[-1] == config.min_budget
    assert result.quality.coarse_scale == 1.0  # shrinking before a resize to the export size buys nothing
    assert {s[:2] for s in inner.shapes} == {(240, 320)}
    assert result.alpha.shape == (480, 640) and result.model_size == (320, 240)
    processor.target_fps = 0
    assert inner.region_budget is None
