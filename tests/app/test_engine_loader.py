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
