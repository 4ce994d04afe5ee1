"""``mattecam bench`` / ``python -m matting_core.bench``: per-stage latency, FPS, GFLOPs and peak memory.

For each frame size (the three video sizes and the paper's two profiling sizes), with CRA on and off, for
each available backend (PyTorch, ONNX Runtime), plus the Robust Video Matting peer on the same runtime and
device, so every figure has the peer's next to it. Prints a table for people or, with ``--json``, one JSON
object per measured case for tracking.

Measurement rules (and why):
- The frame is a real portrait (scikit-image's astronaut, cover-resized and cropped head-first), because
  the number of refined regions depends on the content; ``--regions`` fixes it instead:
  ``auto`` = a budget of 2*(h8+w8) regions (the authors' fixed top-K rule), ``all`` = every uncertain cell
  (the paper's inference rule; with untrained weights that count means nothing), or a number.
- Median over ``--repeats`` frames after ``--warmup`` frames; ``min_ms`` too, which is the steadier figure
  on a machine shared with other work; and ``cpu_ms``, the process CPU time per frame: with ``--threads 1``
  it is the single-core latency even while other processes compete for the core (thread pools that spin
  while waiting inflate it with more threads).
- Peak memory on the CPU is the peak RSS (``VmHWM``) of a fresh subprocess per case: the same thing the
  peer's 1.3 GB figure measures; ``work_mem_mb`` is how far running frames raised it above the loaded
  model. On CUDA it is ``torch.cuda.max_memory_allocated`` for the case.
- GFLOPs count one multiply-add as one FLOP (fvcore's convention, which the paper's tables use).
- The coarse pass always sees the whole frame the model is given (coarse input scale 1, the paper's
  setting), for PyTorch and ONNX Runtime rows alike: the ONNX exports made here are full-frame ones
  (``export_onnx(coarse_scale=1.0)``), not the automatic scale that ``mattecam export-onnx`` and
  ``MattingEngine`` pick from the checkpoint. ``--coarse-scale S`` shrinks the frame the whole model sees
  (coarse pass and refinement at S; the resizes are timed), so both backends then measure the coarse pass
  on the scaled frame. Each ONNX record says which scale its export has (``onnx_coarse_scale``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

#: (width, height): the three video sizes, then the paper's "HD" and "4K" profiling sizes (portrait).
SIZES: tuple[tuple[int, int], ...] = ((1280, 720), (1920, 1080), (3840, 2160), (1152, 1792), (2304, 3456))
PAPER_SIZES = {(1152, 1792): "paper HD", (2304, 3456): "paper 4K"}
BACKENDS = ("torch", "onnxruntime")
PEER = "rvm-peer"
_RESULT_MARK = "@@bench-result "


@dataclass(frozen=True)
class BenchCase:
    """One measured configuration; JSON-able so it can be handed to a worker subprocess."""

    backend: str
    width: int
    height: int
    cra: bool | None
    device: str = "cpu"
    precision: str = "fp32"
    regions: str = "auto"
    repeats: int = 10
    warmup: int = 2
    threads: int | None = None
    model: str | None = None
    image: str | None = None
    onnx_dir: str | None = None
    peer: str | None = None
    scale: float = 1.0

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def inner(self) -> tuple[int, int]:
        """(width, height) the model sees: the frame at the coarse input ``scale`` (the peer ignores it)."""
        if self.scale >= 1.0 or self.backend == PEER:
            return self.width, self.height
        return max(16, round(self.width * self.scale)), max(16, round(self.height * self.scale))


# ---------------------------------------------------------------------------------------------- inputs
def parse_size(text: str) -> tuple[int, int]:
    """"1280x720" -> (1280, 720), with a readable error for anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720 (W x H), not {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size {text} is too small (at least 16x16)")
    return w, h


def region_budget(mode: str, width: int, height: int) -> int | None:
    """The refinement budget for ``--regions``: ``auto`` -> 2*(h8+w8) cells of the 16-padded frame, ``all``
    -> None (every uncertain cell), a number -> that number."""
    if mode == "all":
        return None
    if mode == "auto":
        h8 = 2 * -(-height // 16)
        w8 = 2 * -(-width // 16)
        return 2 * (h8 + w8)
    try:
        n = int(mode)
    except ValueError:
        raise ValueError(f"--regions must be auto, all or a positive number, not {mode!r}") from None
    if n < 1:
        raise ValueError("--regions must be >= 1")
    return n


def _cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to cover width x height, crop horizontally centred and vertically from the top (keep the head)."""
    import cv2

    h, w = img.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (nw, nh), interpolation=interp)
    x0 = (nw - width) // 2
    return np.ascontiguousarray(big[:height, x0:x0 + width])


def synthetic_portrait(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A head-and-shoulders silhouette with a noisy (hair-like) edge over a textured room: the stand-in
    when scikit-image is not installed (e.g. on a bare GPU box)."""
    import cv2

    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(40, 200, (9, 16, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((height, width), np.uint8)
    cx, s = width // 2, min(width, height)
    cv2.ellipse(mask, (cx, int(height * 0.38)), (int(s * 0.16), int(s * 0.21)), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, (cx, height), (int(s * 0.42), int(s * 0.38)), 0, 180, 360, 255, -1)
    noise = cv2.resize(rng.random((height // 8 + 1, width // 8 + 1)).astype(np.float32), (width, height))
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), s * 0.01 + 1)
    alpha = np.clip((soft - 0.5) * 3 + 0.5 + (noise - 0.5) * 0.6 * (soft * (1 - soft) * 4), 0, 1)[..., None]
    person = np.full((height, width, 3), (190, 140, 120), np.float32) * (0.7 + 0.3 * noise[..., None])
    return (alpha * person + (1 - alpha) * bg).astype(np.uint8)


def bench_frame(width: int, height: int, image: str | None = None) -> tuple[np.ndarray, str]:
    """The (H, W, 3) uint8 RGB frame to benchmark on, and a word saying what it is."""
    import cv2

    if image:
        bgr = cv2.imread(image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {image}")
        return _cover(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), width, height), Path(image).name
    try:
        from skimage import data
    except ImportError:
        return synthetic_portrait(width, height), "synthetic portrait (scikit-image not installed)"
    return _cover(data.astronaut(), width, height), "skimage astronaut (cover, head kept)"


# ---------------------------------------------------------------------------------------------- measuring
def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    Linux: ``VmHWM`` from /proc/self/status. Not ``getrusage().ru_maxrss``: that one survives fork + exec,
    so a worker started by a parent holding 1.4 GB (a model it just exported) would report 1.4 GB itself.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def count_gflops(model: Any, image: Any, use_cra: bool, budget: int | None) -> float:
    """GFLOPs (multiply-adds) of one forward pass; ``matting_core.flops.frame_gflops`` when it exists."""
    try:
        from matting_core.flops import frame_gflops
    except ImportError:
        frame_gflops = None
    if frame_gflops is not None:
        result = frame_gflops(model, image, use_cra=use_cra, region_budget=budget)
        return float(getattr(result, "paper_gflops", result))
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(image, use_cra=use_cra, region_budget=budget)
    return counter.get_total_flops() / 2 / 1e9  # FlopCounterMode counts 2 per multiply-add


def safe_gflops(model: Any, image: Any, use_cra: bool, budget: int | None) -> float | None:
    """:func:`count_gflops`, or None (logged) when counting fails: a missing FLOP formula must not lose the
    case's timings."""
    try:
        return round(count_gflops(model, image, use_cra, budget), 2)
    except Exception:  # noqa: BLE001 - the count is optional, the timings are not
        log.warning("FLOP counting failed", exc_info=True)
        return None


def _stage_summary(timings: list[dict[str, float]]) -> dict[str, float]:
    keys = ("coarse", "knn", "refine", "total")
    return {f"{k}_ms": round(_median([t.get(k, 0.0) for t in timings]), 3) for k in keys}


def _scaled(fn: Any, case: BenchCase) -> Any:
    """``fn`` behind the adaptive-quality resize: frame down to the model input, alpha back up (both timed)."""
    if case.inner == (case.width, case.height):
        return fn
    import cv2

    iw, ih = case.inner

    def run(frame: np.ndarray) -> Any:
        result = fn(cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_AREA))
        cv2.resize(result.alpha, (case.width, case.height), interpolation=cv2.INTER_LINEAR)
        return result

    return run


class _Frames:
    """Runs ``fn`` on the frame; keeps each result, its wall time and the process CPU time it used.

    CPU time per frame is the figure that stays honest on a shared machine: other processes stretch the
    wall time of a frame but not the CPU time this process spent on it.
    """

    def __init__(self, fn: Any, frame: np.ndarray, warmup: int, repeats: int) -> None:
        for _ in range(warmup):
            fn(frame)
        self.results: list[Any] = []
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            self.results.append(fn(frame))
            self.wall_ms.append((time.perf_counter() - t0) * 1000.0)
            self.cpu_ms.append((time.process_time() - c0) * 1000.0)

    def spread(self) -> dict[str, float]:
        """Wall-clock total (frame in, alpha out, resizes included), its spread, and CPU time."""
        return {"total_ms": round(_median(self.wall_ms), 3), "min_ms": round(min(self.wall_ms), 3),
                "p90_ms": round(float(np.percentile(self.wall_ms, 90)), 3),
                "cpu_ms": round(_median(self.cpu_ms), 3)}


def _load_engine(case: BenchCase) -> Any:
    from matting_core.engine import EngineOptions, MattingEngine

    # coarse_scale=1.0: the coarse pass sees the whole frame (the paper's setting); scaled rows scale the frame.
    opts = EngineOptions(device=case.device, precision=case.precision, use_cra=bool(case.cra),
                         region_budget=region_budget(case.regions, *case.inner), threads=case.threads,
                         coarse_scale=1.0)
    return MattingEngine.load(case.model, opts)


def measure_case(case: BenchCase) -> dict[str, Any]:
    """Run one case in this process and return its JSON-able record (memory: see the module docstring)."""
    frame, frame_name = bench_frame(case.width, case.height, case.image)
    budget = region_budget(case.regions, *case.inner)
    rec: dict[str, Any] = {"size": case.size, "width": case.width, "height": case.height, "cra": case.cra,
                           "backend": case.backend, "device": case.device, "precision": case.precision,
                           "regions_mode": case.regions, "region_budget": budget, "frame": frame_name,
                           "repeats": case.repeats, "warmup": case.warmup, "coarse_scale": case.scale,
                           "model_input": "{}x{}".format(*case.inner)}
    if case.scale < 1.0 and case.device.startswith("cuda"):
        raise ValueError("--coarse-scale is measured on the CPU backends only")
    if case.backend == PEER:
        rec.update(_measure_peer(case, frame))
    elif case.backend == "torch" and case.device.startswith("cuda"):
        rec.update(_measure_torch_cuda(case, frame, budget))
    elif case.backend == "torch":
        rec.update(_measure_torch_cpu(case, frame, budget))
    elif case.backend == "onnxruntime":
        rec.update(_measure_onnxruntime(case, frame, budget))
    else:
        raise ValueError(f"unknown backend {case.backend!r}")
    rec["fps"] = round(1000.0 / rec["total_ms"], 2) if rec.get("total_ms") else None
    return rec


def _measure_torch_cpu(case: BenchCase, frame: np.ndarray, budget: int | None) -> dict[str, Any]:
    import torch

    engine = _load_engine(case)
    base = _peak_rss_mb()
    runs = _Frames(_scaled(engine.matte_detailed, case), frame, case.warmup, case.repeats)
    peak = _peak_rss_mb()
    image = engine.to_tensor(bench_frame(*case.inner, case.image)[0])
    gflops = safe_gflops(engine.model, image, bool(case.cra), budget)
    return {**_stage_summary([r.timings_ms for r in runs.results]), **runs.spread(),
            "regions": int(_median([len(r.regions) for r in runs.results])),
            "gflops": gflops, "peak_mem_mb": round(peak, 1), "work_mem_mb": round(peak - base, 1),
            "mem_method": "peak RSS of a fresh process (VmHWM)", "provider": "torch-cpu",
            "threads": torch.get_num_threads(), "trained": engine.is_trained, "torch": torch.__version__}


def _measure_onnxruntime(case: BenchCase, frame: np.ndarray, budget: int | None) -> dict[str, Any]:
    import onnxruntime

    from matting_core.backends.onnx_engine import ARENA_MAX_PIXELS, OnnxMattingEngine
    from matting_core.backends.ort_session import OrtOptions

    if not case.onnx_dir:
        raise ValueError("the onnxruntime case needs an export directory (onnx_dir)")
    provider = "cuda" if case.device.startswith("cuda") else "cpu"
    w, h = case.inner
    options = OrtOptions(providers=provider, threads=case.threads, memory_arena=w * h <= ARENA_MAX_PIXELS)
    engine = OnnxMattingEngine(case.onnx_dir, options, use_cra=bool(case.cra), region_budget=budget)
    base = _peak_rss_mb()
    runs = _Frames(_scaled(engine.matte_detailed, case), frame, case.warmup, case.repeats)
    peak = _peak_rss_mb()
    rec = {**_stage_summary([r.timings_ms for r in runs.results]), **runs.spread(),
           "regions": int(_median([len(r.regions) for r in runs.results])),
           "peak_mem_mb": round(peak, 1), "work_mem_mb": round(peak - base, 1),
           "mem_method": "peak RSS of a fresh process (VmHWM)", "provider": engine.coarse.provider,
           "threads": case.threads or os.cpu_count(), "onnxruntime": onnxruntime.__version__,
           "onnx_coarse_scale": engine.coarse_scale}
    engine_t = _load_engine(replace(case, backend="torch", device="cpu", precision="fp32"))  # same graph: same FLOPs
    image = engine_t.to_tensor(bench_frame(*case.inner, case.image)[0])
    rec["gflops"] = safe_gflops(engine_t.model, image, bool(case.cra), budget)
    rec["trained"] = engine_t.is_trained
    return rec


def _measure_peer(case: BenchCase, frame: np.ndarray) -> dict[str, Any]:
    import onnxruntime

    from matting_core.backends.ort_session import OrtOptions
    from matting_core.backends.peer import RvmPeer

    if not case.peer:
        raise ValueError("the peer case needs the path of rvm.onnx")
    provider = "cuda" if case.device.startswith("cuda") else "cpu"
    peer = RvmPeer(case.peer, OrtOptions(providers=provider, threads=case.threads))
    base = _peak_rss_mb()
    runs = _Frames(peer, frame, case.warmup, case.repeats)
    peak = _peak_rss_mb()
    return {"coarse_ms": None, "knn_ms": None, "refine_ms": None, "total_ms": round(_median(runs.wall_ms), 3),
            **runs.spread(),
            "regions": None, "gflops": None, "peak_mem_mb": round(peak, 1), "work_mem_mb": round(peak - base, 1),
            "mem_method": "peak RSS of a fresh process (VmHWM)", "provider": peer.ort.provider,
            "downsample_ratio": peer.ratio, "threads": case.threads or os.cpu_count(),
            "onnxruntime": onnxruntime.__version__}


def _measure_torch_cuda(case: BenchCase, frame: np.ndarray, budget: int | None) -> dict[str, Any]:
    """Model time on a device-resident frame (CUDA graph when the budget is static), per-stage from an eager
    pass with a sync at each stage boundary, peak from the CUDA allocator."""
    import torch

    from matting_core.backends.torch_runtime import TorchRuntime, TorchRuntimeOptions

    engine = _load_engine(replace(case, device="cpu", precision="fp32"))
    rt = TorchRuntime(engine.model, TorchRuntimeOptions(device=case.device, precision=case.precision,
                                                        use_cra=bool(case.cra), region_budget=budget))
    dev = rt.upload(frame)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.max_memory_allocated()
    totals = []
    for i in range(case.warmup + case.repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        rt.matte_tensor(dev)
        torch.cuda.synchronize()
        if i >= case.warmup:
            totals.append((time.perf_counter() - t0) * 1000.0)
    peak = torch.cuda.max_memory_allocated()
    stages = []
    for i in range(max(3, case.repeats // 3) + 1):
        clock = _SyncClock()
        rt.matte_tensor(dev, clock=clock)
        if i:
            stages.append(clock.finish())
    image = dev.permute(2, 0, 1).unsqueeze(0).float().div(255.0)
    with torch.autocast("cuda", dtype=rt.dtype, enabled=rt.dtype is not None):
        gflops = safe_gflops(rt.model, image, bool(case.cra), budget)
    eager = _stage_summary(stages)
    return {"coarse_ms": eager["coarse_ms"], "knn_ms": eager["knn_ms"], "refine_ms": eager["refine_ms"],
            "eager_total_ms": eager["total_ms"], "total_ms": round(_median(totals), 3),
            "regions": rt.last_region_count, "gflops": gflops,
            "peak_mem_mb": round(peak / 2**20, 1), "work_mem_mb": round((peak - base) / 2**20, 1),
            "mem_method": "torch.cuda.max_memory_allocated", "provider": f"torch-cuda ({rt.mode})",
            "graph_error": rt.graph_error, "gpu": torch.cuda.get_device_name(), "trained": engine.is_trained,
            "torch": torch.__version__}


class _SyncClock:
    """Stage clock for the model's ``clock`` hook that synchronises CUDA at each boundary."""

    def __init__(self) -> None:
        import torch

        self._sync = torch.cuda.synchronize
        self._sync()
        self.start = self.t = time.perf_counter()
        self.ms: dict[str, float] = {"coarse": 0.0, "knn": 0.0, "refine": 0.0}

    def mark(self, stage: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self.t) * 1000.0
        self.t = now

    def finish(self) -> dict[str, float]:
        self._sync()
        return {**self.ms, "total": (time.perf_counter() - self.start) * 1000.0}


# ---------------------------------------------------------------------------------------------- orchestration
def run_case_subprocess(case: BenchCase, timeout: float) -> dict[str, Any]:
    """Measure ``case`` in a fresh interpreter so its peak RSS is its own."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "matting_core.bench", "--worker", json.dumps(asdict(case))]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO_ROOT))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited {proc.returncode}: {tail}"}


def _worker(case_json: str) -> int:
    case = BenchCase(**json.loads(case_json))
    try:
        rec = measure_case(case)
    except Exception as exc:  # reported to the parent as this case's error
        log.debug("case failed", exc_info=True)
        rec = {"error": f"{type(exc).__name__}: {exc}"}
    print(_RESULT_MARK + json.dumps(rec), flush=True)
    return 0


def _model_key(model: str | None) -> str:
    """A cache key for exports: the checkpoint file's identity, or the seeded random model."""
    from matting_core.checkpoint import DEFAULT_MODEL_PATH

    path = Path(model) if model else DEFAULT_MODEL_PATH
    if path.is_file():
        st = path.stat()
        return f"{path.stem}-{st.st_size}-{int(st.st_mtime)}"
    return "random-seed0"


def ensure_export(case: BenchCase, cache_root: Path) -> Path:
    """The ONNX export (dynamic region count) for the case's model and size, exporting it if missing."""
    from matting_core.backends.onnx_export import export_onnx
    from matting_core.backends.onnx_manifest import FORMAT, MANIFEST

    w, h = case.inner
    out = cache_root / f"{_model_key(case.model)}-{w}x{h}-f{FORMAT}"
    if not (out / MANIFEST).is_file():
        engine = _load_engine(replace(case, backend="torch", device="cpu", precision="fp32"))
        log.info("exporting ONNX for %dx%d to %s (once; cached)", w, h, out)
        # full-frame coarse pass, like the PyTorch rows (see the module docstring)
        export_onnx(engine.model, out, w, h, budget=None, trained=engine.is_trained, coarse_scale=1.0)
    return out


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mattecam" / "onnx"


def available_backends() -> list[str]:
    """"torch", plus "onnxruntime" when it is installed."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return ["torch"]
    return ["torch", "onnxruntime"]


def plan_cases(args: argparse.Namespace) -> tuple[list[BenchCase], list[str]]:
    """The cases to run for the parsed arguments, and notes for the reader (what was skipped, and why)."""
    notes: list[str] = []
    sizes = [args.size] if args.size else list(SIZES)
    cras = {"on": [True], "off": [False], "both": [True, False]}[args.cra]
    ort_ok = "onnxruntime" in available_backends()
    if ort_ok and args.device.startswith("cuda"):
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            ort_ok = False
            notes.append("ONNX Runtime has no CUDA provider here (onnxruntime-gpu not installed): "
                         "ONNX Runtime backend and peer skipped on CUDA")
    backends = [b for b in (BACKENDS if args.backend == "all" else [args.backend])
                if b != "onnxruntime" or ort_ok]
    if args.backend == "onnxruntime" and not ort_ok and not notes:
        notes.append("onnxruntime is not installed: nothing to measure for --backend onnxruntime")
    peer = None if args.no_peer else (args.peer or _default_peer())
    if not args.no_peer and peer is None:
        notes.append("peer skipped: ../shared/peers/rvm.onnx not found next to the repository (use --peer PATH)")
    elif peer is not None and not Path(peer).is_file():
        notes.append(f"peer skipped: {peer} does not exist")
        peer = None
    if peer is not None and not ort_ok:
        if not notes:
            notes.append("peer skipped: it runs on ONNX Runtime, which is unavailable for this device")
        peer = None
    common: dict[str, Any] = {"device": args.device, "precision": args.precision, "regions": args.regions,
                              "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads,
                              "model": args.model, "image": args.image, "scale": args.coarse_scale}
    cases = []
    for w, h in sizes:
        if peer is not None:
            cases.append(BenchCase(PEER, w, h, None, peer=peer, **common))
        for backend in backends:
            for cra in cras:
                cases.append(BenchCase(backend, w, h, cra, **common))
    return cases, notes


def _default_peer() -> str | None:
    from matting_core.backends.peer import default_peer_path

    p = default_peer_path(REPO_ROOT)
    return str(p) if p else None


def attach_peer_ratios(records: list[dict[str, Any]]) -> None:
    """Give every record of a size the peer's time and memory on that size, and our ratio to them."""
    peers = {r["size"]: r for r in records if r.get("backend") == PEER and "error" not in r}
    for r in records:
        p = peers.get(r.get("size"))
        if p is None or r.get("backend") == PEER or "error" in r:
            continue
        r["peer_total_ms"] = p["total_ms"]
        r["peer_peak_mem_mb"] = p["peak_mem_mb"]
        r["speedup_vs_peer"] = round(p["total_ms"] / r["total_ms"], 3) if r.get("total_ms") else None
        if p.get("min_ms") and r.get("min_ms"):
            r["speedup_vs_peer_min"] = round(p["min_ms"] / r["min_ms"], 3)
        r["mem_vs_peer"] = round(r["peak_mem_mb"] / p["peak_mem_mb"], 3) if p.get("peak_mem_mb") else None


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


TABLE_COLUMNS = [("size", "size", 0), ("backend", "backend", 0), ("CRA", "cra", 0), ("regions", "regions", 0),
                 ("coarse", "coarse_ms", 1), ("knn", "knn_ms", 2), ("refine", "refine_ms", 1),
                 ("total ms", "total_ms", 1), ("min ms", "min_ms", 1), ("CPU ms", "cpu_ms", 1), ("FPS", "fps", 1),
                 ("GFLOPs", "gflops", 1),
                 ("peak MB", "peak_mem_mb", 0), ("x RVM speed", "speedup_vs_peer", 2), ("x RVM mem", "mem_vs_peer", 2)]


def _backend_label(r: dict[str, Any]) -> str:
    provider = str(r.get("provider") or "")
    if not provider:
        return r["backend"]
    if r["backend"] == "torch":
        return "torch/" + provider.removeprefix("torch-")
    return f"{r['backend']}/{provider.replace('ExecutionProvider', '').lower()}"


def _table_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Header row plus one row of strings per record; an error row has 4 cells (size, backend, CRA, error)."""
    rows = [[h for h, _, _ in TABLE_COLUMNS]]
    for r in records:
        if "error" in r or "skipped" in r:
            msg = "error: " + r["error"] if "error" in r else "skipped: " + r["skipped"]
            rows.append([r.get("size", "?"), r.get("backend", "?"), _fmt(r.get("cra")), msg])
            continue
        row = []
        for _, key, d in TABLE_COLUMNS:
            v = r.get(key)
            if key == "size":
                if (r.get("width"), r.get("height")) in PAPER_SIZES:
                    v = f"{v} ({PAPER_SIZES[(r['width'], r['height'])]})"
                if r.get("coarse_scale", 1.0) < 1.0:
                    v = f"{v} @{r['coarse_scale']:g}"
            if key == "backend":
                v = _backend_label(r)
            row.append(_fmt(v, d))
        rows.append(row)
    return rows


def format_table(records: list[dict[str, Any]]) -> str:
    """Fixed-width table, one row per case. "x RVM" = the peer's time / ours (> 1: we are faster)."""
    rows = _table_rows(records)
    n = len(TABLE_COLUMNS)
    width = [max(len(row[i]) for row in rows if len(row) == n) for i in range(n)]
    lines = []
    for row in rows:
        if len(row) < n:
            lines.append("  ".join(c.ljust(width[i]) for i, c in enumerate(row[:3])) + "  " + row[3])
        else:
            lines.append("  ".join(c.rjust(width[i]) if i >= 3 else c.ljust(width[i]) for i, c in enumerate(row)))
    return "\n".join(lines)


def format_markdown(records: list[dict[str, Any]]) -> str:
    """The same table as GitHub markdown (for the README)."""
    rows = _table_rows(records)
    n = len(TABLE_COLUMNS)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] * 3 + ["--:"] * (n - 3)) + "|"]
    for row in rows[1:]:
        cells = row if len(row) == n else row[:3] + [row[3]] + [""] * (n - 4)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def load_records(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Records saved earlier: ``--json`` output (one object per line) or a ``scripts/gpu_check.py`` report."""
    records: list[dict[str, Any]] = []
    for path in paths:
        text = Path(path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            records += [json.loads(line) for line in text.splitlines() if line.strip()]
            continue
        if isinstance(data, dict) and isinstance(data.get("bench"), list):
            records += data["bench"]
        elif isinstance(data, dict):
            records.append(data)
        else:
            raise ValueError(f"{path}: neither bench JSON lines nor a gpu_check report")
    attach_peer_ratios(records)
    return records


def header(args: argparse.Namespace, records: list[dict[str, Any]]) -> str:
    ok = [r for r in records if "error" not in r]
    frame = ok[0]["frame"] if ok else "?"
    trained = next((r.get("trained") for r in ok if "trained" in r), None)
    regions = {"auto": "budget 2*(h8+w8) per frame (the authors' fixed top-K rule)",
               "all": "every uncertain cell (content-dependent)"}.get(args.regions, f"budget {args.regions}")
    cpu = f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"
    scale = "" if args.coarse_scale >= 1.0 else (
        f"; coarse input scale {args.coarse_scale:g} (frame resized down for the model, alpha resized up: both timed)")
    return (f"mattecam bench: device {args.device} ({cpu}), precision {args.precision}, "
            f"threads {args.threads or 'default'}{scale}\nframe: {frame}; regions refined: {regions}; weights: "
            f"{'trained' if trained else 'RANDOM (untrained) - timings valid, mattes meaningless'}\n"
            f"median of {args.repeats} frames after {args.warmup} warm-up; "
            "x RVM = RVM peer time / ours (> 1 = faster), same runtime and device")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=parse_size, help="one size WxH (default: 1280x720 1920x1080 3840x2160 "
                   "and the paper's 1152x1792 2304x3456)")
    p.add_argument("--cra", choices=("on", "off", "both"), default="both")
    p.add_argument("--backend", choices=("all", *BACKENDS), default="all",
                   help="all = every installed backend")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="auto = fp16 on CUDA, fp32 on the CPU")
    p.add_argument("--regions", default="auto",
                   help="auto = fixed budget 2*(h8+w8); all = every uncertain cell; N = top-N budget")
    p.add_argument("--repeats", type=int, default=10, help="timed frames per case")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames per case first")
    p.add_argument("--coarse-scale", type=float, default=1.0,
                   help="run the model on the frame scaled by this (adaptive quality's lower levels); the "
                   "resize down and the alpha's resize up are timed too")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch and ONNX Runtime)")
    p.add_argument("--model", default=None, help="checkpoint (default: models/default.safetensors, else random)")
    p.add_argument("--image", default=None, help="benchmark frame (default: scikit-image's astronaut)")
    p.add_argument("--peer", default=None, help="RVM peer ONNX (default: ../shared/peers/rvm.onnx if present)")
    p.add_argument("--no-peer", action="store_true", help="do not run the peer")
    p.add_argument("--onnx-cache", default=None, help=f"where ONNX exports are cached (default {default_cache_dir()})")
    p.add_argument("--in-process", action="store_true",
                   help="run every case in this process (faster; CPU peak memory then is not per case)")
    p.add_argument("--case-timeout", type=float, default=900.0, help="seconds before a case is abandoned")
    p.add_argument("--json", action="store_true", help="one JSON object per case instead of the table")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--from-json", nargs="+", metavar="FILE", default=None,
                   help="measure nothing: print the table of saved --json output or gpu_check reports")


def _validate(args: argparse.Namespace) -> None:
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda but CUDA is not available here")
    elif args.device != "cpu":
        raise SystemExit(f"error: --device must be cpu or cuda, not {args.device!r}")
    if args.precision == "auto":
        args.precision = "fp16" if args.device.startswith("cuda") else "fp32"
    if not 0.0 < args.coarse_scale <= 1.0:
        raise SystemExit("error: --coarse-scale must be in (0, 1]")
    if args.coarse_scale < 1.0 and args.device.startswith("cuda"):
        raise SystemExit("error: --coarse-scale is measured on the CPU backends only")
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit("error: --repeats must be >= 1 and --warmup >= 0")
    try:
        region_budget(args.regions, 1280, 720)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Plan, export what ONNX Runtime needs, measure each case, print a table or JSON lines."""
    if args.from_json:
        try:
            records = load_records(args.from_json)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None
        print(format_markdown(records) if args.markdown else format_table(records))
        return 0
    _validate(args)
    cases, notes = plan_cases(args)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    cache = Path(args.onnx_cache) if args.onnx_cache else default_cache_dir()
    in_process = args.in_process or args.device.startswith("cuda")
    records: list[dict[str, Any]] = []
    for case in cases:
        if case.backend == "onnxruntime":
            try:
                case = replace(case, onnx_dir=str(ensure_export(case, cache)))
            except Exception as exc:  # noqa: BLE001 - the export failing is this case's result
                log.debug("export failed", exc_info=True)
                records.append({**_ident(case), "error": f"ONNX export failed: {type(exc).__name__}: {exc}"})
                if args.json:
                    print(json.dumps(records[-1]), flush=True)
                continue
        log.info("measuring %s %s cra=%s", case.backend, case.size, case.cra)
        if in_process:
            try:
                rec = measure_case(case)
            except Exception as exc:  # noqa: BLE001 - reported as the case's error
                rec = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            rec = run_case_subprocess(case, args.case_timeout)
        rec = {**_ident(case), **rec}
        if in_process and not args.device.startswith("cuda"):
            rec["mem_method"] = "peak RSS of the whole run so far (--in-process): not per case"
        records.append(rec)
        attach_peer_ratios(records)  # the size's peer is planned first, so its ratios are known already
        if args.json:
            print(json.dumps(rec), flush=True)
    if not args.json:
        print(header(args, records))
        print(format_markdown(records) if args.markdown else format_table(records))
        for n in notes:
            print(f"note: {n}")
    return 1 if records and all("error" in r for r in records) else 0


def _ident(case: BenchCase) -> dict[str, Any]:
    return {"size": case.size, "width": case.width, "height": case.height, "cra": case.cra,
            "backend": case.backend, "device": case.device}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        return _worker(argv[1])
    parser = argparse.ArgumentParser(prog="python -m matting_core.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["SIZES", "BenchCase", "bench_frame", "format_table", "measure_case", "parse_size", "region_budget",
           "run"]
