"""ONNX Runtime sessions: pick the fastest execution provider that really works, and say which one it was.

ONNX Runtime is quiet about failure: asking for ``CUDAExecutionProvider`` on a machine whose CUDA libraries
are missing logs an error and silently runs on the CPU (``session.get_providers()`` tells the truth,
``get_available_providers()`` does not). So the factory tries TensorRT, then CUDA, then CPU, one at a time,
and reports the provider the session actually got.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

#: Fastest first. Only these three are tried; others (Azure, OpenVINO, ...) are left alone.
PROVIDER_PREFERENCE: tuple[str, ...] = (TENSORRT, CUDA, CPU)

#: Short names accepted on the command line.
PROVIDER_ALIASES: dict[str, str] = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}

ProviderRequest = Literal["auto", "tensorrt", "trt", "cuda", "cpu"]


class OrtUnavailableError(RuntimeError):
    """onnxruntime is not installed (it is the optional ``onnx`` extra)."""


class ProviderError(RuntimeError):
    """No execution provider in the request could create a session."""


def import_ort() -> Any:
    """Import onnxruntime or explain how to get it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OrtUnavailableError(
            "onnxruntime is not installed: `pip install -e .[onnx]` (CPU) or `pip install onnxruntime-gpu` "
            "(NVIDIA; never both in one environment)"
        ) from exc
    return onnxruntime


@dataclass(frozen=True)
class OrtOptions:
    """How to build a session.

    ``providers``: "auto" tries TensorRT, CUDA, CPU in that order (each only if installed); a single name
    ("cuda", "cpu", ...) starts from that provider and still falls back towards the CPU.
    ``threads``: intra-op threads for the CPU provider (None = ONNX Runtime's default, one per core).
    ``fp16``: let TensorRT build fp16 engines. ``trt_cache_dir``: where TensorRT keeps built engines, so only
    the first run of a shape pays the (minutes-long) build.
    ``memory_arena``: ONNX Runtime's CPU arena and memory-pattern planning keep every intermediate buffer of
    a run allocated; fast for small frames, but at 4K it adds ~400 MB of peak memory for ~5 % of speed.
    ``spin``: let idle CPU worker threads busy-wait for the next job (ONNX Runtime's default). Off here: in a
    live pipeline the capture, compositing and GUI threads need those cycles, and on two cores spinning
    workers slow everything else down for a sub-millisecond gain.
    """

    providers: str = "auto"
    threads: int | None = None
    fp16: bool = True
    trt_cache_dir: str | None = None
    device_id: int = 0
    spin: bool = False
    memory_arena: bool = True

    def __post_init__(self) -> None:
        if self.providers != "auto" and self.providers.lower() not in PROVIDER_ALIASES:
            raise ValueError(
                f"unknown ONNX Runtime provider {self.providers!r}; choose auto, "
                + ", ".join(sorted(PROVIDER_ALIASES))
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1 (or None for ONNX Runtime's default)")


def provider_candidates(request: str, available: Sequence[str]) -> list[str]:
    """The providers to try, in order, for ``request`` given what the installed wheel offers.

    The CPU provider always ends the list: it is in every build and is the clean fallback.
    """
    if request == "auto":
        start = 0
    else:
        start = PROVIDER_PREFERENCE.index(PROVIDER_ALIASES[request.lower()])
    wanted = PROVIDER_PREFERENCE[start:]
    out = [p for p in wanted if p in available and p != CPU]
    out.append(CPU)
    return out


def _provider_entry(name: str, opts: OrtOptions) -> str | tuple[str, dict[str, Any]]:
    if name == TENSORRT:
        cfg: dict[str, Any] = {"device_id": opts.device_id, "trt_fp16_enable": opts.fp16}
        if opts.trt_cache_dir:
            os.makedirs(opts.trt_cache_dir, exist_ok=True)
            cfg.update(trt_engine_cache_enable=True, trt_engine_cache_path=opts.trt_cache_dir)
        return (name, cfg)
    if name == CUDA:
        return (name, {"device_id": opts.device_id, "cudnn_conv_algo_search": "HEURISTIC"})
    return name


@dataclass
class OrtSession:
    """A session plus the provider it really runs on (``provider``) and the ones that failed on the way."""

    session: Any
    provider: str
    path: str
    skipped: list[str] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @property
    def short_provider(self) -> str:
        """"cpu", "cuda" or "tensorrt", for tables."""
        return {TENSORRT: "tensorrt", CUDA: "cuda", CPU: "cpu"}.get(self.provider, self.provider)

    def run(self, feed: dict[str, Any], outputs: Sequence[str] | None = None) -> list[Any]:
        return self.session.run(list(outputs) if outputs is not None else None, feed)


def create_session(path: str | Path, options: OrtOptions = OrtOptions(), ort: Any = None) -> OrtSession:
    """Open ``path`` on the best provider that works; log which one and why others were skipped.

    ``ort`` lets tests pass a stand-in module; normally onnxruntime is imported here.
    """
    ort = ort if ort is not None else import_ort()
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    available = list(ort.get_available_providers())
    skipped: list[str] = []
    if options.providers != "auto":
        wanted = PROVIDER_ALIASES[options.providers.lower()]
        if wanted not in available:
            skipped.append(f"{wanted}: not in this onnxruntime build (installed: {', '.join(available)})")
    for name in provider_candidates(options.providers, available):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # a failed GPU provider is reported by us, once, not by ORT's C++ logger
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        if not options.memory_arena:
            so.enable_cpu_mem_arena = False
            so.enable_mem_pattern = False
        if not options.spin and hasattr(so, "add_session_config_entry"):
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[Any] = [_provider_entry(name, options)]
        if name != CPU:
            providers.append(CPU)  # ORT needs it to place the few ops a GPU provider does not take
        try:
            session = ort.InferenceSession(path, sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - any failure of a GPU provider means: try the next one
            skipped.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        got = session.get_providers()[0] if session.get_providers() else CPU
        if got != name:
            skipped.append(f"{name}: requested but the session fell back to {got} (libraries missing?)")
            continue
        for why in skipped:
            log.warning("ONNX Runtime provider skipped: %s", why)
        log.info("ONNX Runtime %s on %s for %s", getattr(ort, "__version__", "?"), got, Path(path).name)
        return OrtSession(session=session, provider=got, path=path, skipped=skipped)
    raise ProviderError(f"no ONNX Runtime provider could open {path}: " + "; ".join(skipped))
