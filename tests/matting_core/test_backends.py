"""ONNX Runtime provider selection and fallback, and the RVM peer runner."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from matting_core.backends import ort_session
from matting_core.backends.ort_session import (
    CPU,
    CUDA,
    TENSORRT,
    OrtOptions,
    OrtUnavailableError,
    ProviderError,
    create_session,
    provider_candidates,
)
from matting_core.backends.peer import RvmPeer, default_peer_path, rvm_downsample_ratio

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """y = x + 1 on a float vector: the smallest real graph ONNX Runtime can open."""
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


class FakeOrt:
    """Stands in for onnxruntime: which providers exist, which fail to create, which silently fall back."""

    class GraphOptimizationLevel:
        ORT_ENABLE_ALL = 99

    def __init__(self, available, raises=(), falls_back=()):
        self.available = list(available)
        self.raises = set(raises)
        self.falls_back = set(falls_back)
        self.tried: list[str] = []

    def get_available_providers(self):
        return self.available

    def SessionOptions(self):  # noqa: N802 - onnxruntime's name
        so = SimpleNamespace(config={})
        so.add_session_config_entry = so.config.__setitem__
        return so

    def InferenceSession(self, path, sess_options=None, providers=()):  # noqa: N802
        self.options = sess_options
        first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        self.tried.append(first)
        if first in self.raises:
            raise RuntimeError(f"{first} could not load libcudnn.so.9\nmore lines")
        got = CPU if first in self.falls_back else first
        return SimpleNamespace(get_providers=lambda: [got, CPU] if got != CPU else [CPU])


def test_auto_tries_tensorrt_then_cuda_then_cpu():
    assert provider_candidates("auto", [TENSORRT, CUDA, CPU]) == [TENSORRT, CUDA, CPU]
    assert provider_candidates("auto", ["AzureExecutionProvider", CPU]) == [CPU]


def test_named_provider_starts_there_and_still_ends_on_cpu():
    assert provider_candidates("cuda", [TENSORRT, CUDA, CPU]) == [CUDA, CPU]
    assert provider_candidates("cpu", [TENSORRT, CUDA, CPU]) == [CPU]
    assert provider_candidates("trt", [CPU]) == [CPU]


def test_unknown_provider_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ONNX Runtime provider 'rocm'"):
        OrtOptions(providers="rocm")
    with pytest.raises(ValueError, match="threads"):
        OrtOptions(threads=0)


def test_failing_gpu_providers_fall_back_to_cpu_and_are_reported(tiny_model):
    fake = FakeOrt([TENSORRT, CUDA, CPU], raises={TENSORRT}, falls_back={CUDA})
    s = create_session(tiny_model, OrtOptions(), ort=fake)
    assert fake.tried == [TENSORRT, CUDA, CPU]
    assert s.provider == CPU and s.short_provider == "cpu"
    assert any("TensorrtExecutionProvider: RuntimeError: " in why and "more lines" not in why for why in s.skipped)
    assert any("CUDAExecutionProvider: requested but the session fell back" in why for why in s.skipped)


def test_working_cuda_provider_is_kept(tiny_model):
    fake = FakeOrt([TENSORRT, CUDA, CPU], raises={TENSORRT})
    s = create_session(tiny_model, OrtOptions(), ort=fake)
    assert s.provider == CUDA and fake.tried == [TENSORRT, CUDA]


def test_session_options_follow_ort_options(tiny_model):
    fake = FakeOrt([CPU])
    create_session(tiny_model, OrtOptions(threads=2, memory_arena=False), ort=fake)
    so = fake.options
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.enable_cpu_mem_arena is False and so.enable_mem_pattern is False
    assert so.config["session.intra_op.allow_spinning"] == "0"
    create_session(tiny_model, OrtOptions(spin=True), ort=fake)
    assert "session.intra_op.allow_spinning" not in fake.options.config
    assert not hasattr(fake.options, "enable_cpu_mem_arena")  # left at ONNX Runtime's default


def test_every_provider_failing_raises_provider_error(tiny_model):
    fake = FakeOrt([CPU], raises={CPU})
    with pytest.raises(ProviderError, match="no ONNX Runtime provider could open"):
        create_session(tiny_model, OrtOptions(), ort=fake)


def test_real_onnxruntime_asked_for_cuda_runs_on_cpu_and_says_so(tiny_model):
    s = create_session(tiny_model, OrtOptions(providers="cuda", threads=1))
    if CUDA in ort.get_available_providers() and s.provider == CUDA:
        pytest.skip("this machine really has the CUDA provider")
    assert s.provider == CPU
    assert s.session.get_providers()[0] == CPU
    assert any(CUDA in why for why in s.skipped)
    np.testing.assert_allclose(s.run({"x": np.array([1.0, 2.0], np.float32)})[0], [2.0, 3.0])


def test_missing_model_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        create_session(tmp_path / "nope.onnx", OrtOptions(providers="cpu"))


def test_missing_onnxruntime_explains_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OrtUnavailableError, match="pip install"):
        ort_session.import_ort()


@pytest.mark.parametrize(("h", "w", "ratio"), [(720, 1280, 0.375), (1080, 1920, 0.25), (2160, 3840, 0.125),
                                               (1792, 1152, 480 / 1792), (400, 300, 1.0)])
def test_rvm_ratio_follows_its_recommendations(h, w, ratio):
    assert rvm_downsample_ratio(h, w) == pytest.approx(ratio)


def test_default_peer_path_is_next_to_the_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert default_peer_path(repo) is None
    (tmp_path / "shared" / "peers").mkdir(parents=True)
    (tmp_path / "shared" / "peers" / "rvm.onnx").write_bytes(b"x")
    assert default_peer_path(repo) == (tmp_path / "shared" / "peers" / "rvm.onnx").resolve()


def test_peer_rejects_a_model_that_is_not_rvm(tiny_model):
    with pytest.raises(ValueError, match="does not look like the RVM peer"):
        RvmPeer(tiny_model, OrtOptions(providers="cpu"))


def test_rvm_peer_mattes_a_frame_and_carries_its_state():
    path = default_peer_path()
    if path is None:
        pytest.skip("RVM peer not found at ../shared/peers/rvm.onnx")
    peer = RvmPeer(path, OrtOptions(providers="cpu", threads=1))
    frame = np.zeros((96, 128, 3), np.uint8)
    frame[20:90, 40:90] = 200
    first = peer(frame)
    assert first.alpha.shape == (96, 128) and first.alpha.dtype == np.float32
    assert first.alpha.min() >= 0.0 and first.alpha.max() <= 1.0
    assert peer.ratio == 1.0 and first.model_ms > 0
    assert peer._state is not None and peer._state[0].shape != (1, 1, 1, 1)  # fed back, not the zeros
    with pytest.raises(ValueError, match="uint8"):
        peer(frame.astype(np.float32))
