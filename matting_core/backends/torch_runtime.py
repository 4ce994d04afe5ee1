"""The PyTorch fast path: autocast, channels-last, fused attention, static region budget + CUDA graphs,
pinned-memory transfers and compositing on the device, so a frame crosses the bus twice.

Why each piece:
- fp16/bf16 autocast: Swin's matmuls and the refiner's convs run on tensor cores.
- channels-last: the coarse decoder's convolutions get Swin's NHWC features without a layout copy.
- fused attention: timm ships Swin's ``scaled_dot_product_attention`` path but keeps it off by default
  ("experimental"); it is switched on here per module. CRA already uses SDPA.
- a fixed region budget makes every shape static (top-K cells, the same count in every image), so the
  neighbour search is one batched distance + top-k with no host sync (the model's budgeted forward tells
  ``knn_pairwise`` the image count), and one CUDA graph can replay the whole frame -> alpha pass with one
  launch (:func:`static_forward`).
- pinned host buffers make uploads/downloads asynchronous DMA instead of staged pageable copies.
- Swin's window masks come from ``swin_masked``'s per-device cache, so no block copies a mask from the host
  (which would also be illegal inside CUDA graph capture).

On the CPU (or with ``cuda_graph=False``) the same class runs eagerly, which keeps it testable here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from matting_core.config import CLEAR_BACKGROUND_BELOW, DROP_ISLANDS_BELOW, FILL_FOREGROUND_AT
from matting_core.gpu_composite import composite_torch
from matting_core.model import PortraitMattingModel
from matting_core.neighbours import Neighbours, knn_pairwise
from matting_core.regions import drop_unsure_islands

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _staging_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A pinned host buffer that is a normal tensor even when first made inside ``inference_mode``.

    A buffer born in inference mode is an "inference tensor": a later ``copy_`` into it outside inference
    mode raises (seen on the H200 run of scripts/gpu_check.py, end-to-end section).
    """
    with torch.inference_mode(False):
        return torch.empty(shape, dtype=dtype, pin_memory=True)


@dataclass(frozen=True)
class TorchRuntimeOptions:
    """``region_budget`` None refines every uncertain region (data-dependent count: eager only)."""

    device: str = "cuda"
    precision: Precision = "fp16"
    use_cra: bool = True
    region_budget: int | None = 1024
    channels_last: bool = True
    fused_attention: bool = True
    cuda_graph: bool = True
    clear_background: float = CLEAR_BACKGROUND_BELOW  # as EngineOptions.clear_background
    fill_foreground: float = FILL_FOREGROUND_AT  # as EngineOptions.fill_foreground
    drop_islands: float = DROP_ISLANDS_BELOW  # as EngineOptions.drop_islands (after the graph: it syncs)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, not {self.precision!r}")
        if self.region_budget is not None and self.region_budget < 1:
            raise ValueError("region_budget must be >= 1 (or None for every uncertain region)")


def enable_fused_attention(model: torch.nn.Module, enabled: bool = True) -> int:
    """Switch timm's Swin window attention to ``scaled_dot_product_attention``; returns how many modules."""
    from timm.models.swin_transformer import WindowAttention

    count = 0
    for m in model.modules():
        if isinstance(m, WindowAttention):
            m.fused_attn = enabled
            count += 1
    return count


def knn_fixed_count(coords: torch.Tensor, batch_size: int, k: int) -> Neighbours:
    """k nearest regions when every image has the same number of regions (a fixed budget), with no host sync:
    :func:`matting_core.neighbours.knn_pairwise` told the image count up front (same tie-break as every search).
    ``coords`` (N, 2) cells grouped by image, N = batch_size * m.
    """
    m = coords.shape[0] // batch_size
    batch = torch.arange(batch_size, device=coords.device).repeat_interleave(m)
    return knn_pairwise(coords, batch, k, images=batch_size)


def static_forward(model: PortraitMattingModel, image: torch.Tensor, budget: int, use_cra: bool,
                   clock: Any = None, knn: str = "pairwise",
                   clear_background: float = 0.0, fill_foreground: float = 1.0) -> tuple[torch.Tensor, int]:
    """The model's forward with a fixed region budget, free of host syncs (CUDA-graph safe).

    With a budget the model tells the pairwise search the image count, so top-K selection, KNN and
    refinement make no host sync; returns the alpha (B, 1, H, W) and the region count. ``knn`` as in the
    model's forward ("kdtree" gives the same neighbours with a sync: for tests).
    """
    out = model(image, use_cra=use_cra, region_budget=budget, knn=knn, clock=clock,
                clear_background=clear_background, fill_foreground=fill_foreground)
    return out.alpha, len(out.regions)


class TorchRuntime:
    """Frame-in, alpha/composite-out on one device with the fast-path options.

    ``matte_tensor`` works on device tensors (what the model-time benchmark measures); ``matte`` and
    ``composite`` take numpy frames and do the pinned upload / download around it (end to end).
    """

    def __init__(self, model: PortraitMattingModel, options: TorchRuntimeOptions = TorchRuntimeOptions()) -> None:
        if options.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {options.device!r} requested but CUDA is not available")
        self.options = options
        self.device = torch.device(options.device)
        self.is_cuda = self.device.type == "cuda"
        self.dtype = _DTYPES.get(options.precision) if (self.is_cuda or options.precision == "bf16") else None
        self.model = model.to(self.device).eval()
        if options.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fused_modules = enable_fused_attention(self.model, options.fused_attention)
        self.use_graph = bool(options.cuda_graph and self.is_cuda and options.region_budget is not None)
        self.graph_error: str | None = None
        self._size: tuple[int, int] | None = None
        self._graph: Any = None
        self._static_in: torch.Tensor | None = None
        self._static_alpha: torch.Tensor | None = None
        self._pinned_in: torch.Tensor | None = None
        self._pinned_out: torch.Tensor | None = None
        self._background: torch.Tensor | None = None
        self.last_region_count = 0

    # ------------------------------------------------------------------ model
    def _forward(self, frame_u8: torch.Tensor, clock: Any = None) -> torch.Tensor:
        """(H, W, 3) uint8 on the device -> (1, 1, H, W) float32 alpha."""
        image = frame_u8.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        if self.options.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        budget, clear, fill = self.options.region_budget, self.options.clear_background, self.options.fill_foreground
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None,
                            cache_enabled=False):
            if budget is not None:
                alpha, self.last_region_count = static_forward(self.model, image, budget, self.options.use_cra, clock,
                                                               clear_background=clear, fill_foreground=fill)
            else:
                knn = "pairwise" if self.is_cuda else "auto"
                out = self.model(image, use_cra=self.options.use_cra, knn=knn, clock=clock, clear_background=clear,
                                 fill_foreground=fill)
                alpha, self.last_region_count = out.alpha, len(out.regions)
        return alpha.float()

    @torch.inference_mode()
    def matte_tensor(self, frame_u8: torch.Tensor, clock: Any = None) -> torch.Tensor:
        """Alpha (1, 1, H, W) float32 on the device for a device-resident (H, W, 3) uint8 frame.

        With a CUDA graph the returned tensor is the graph's static output: it is overwritten by the next
        call (clone it to keep it). ``clock`` (stage timings) forces the eager path.
        """
        h, w = frame_u8.shape[:2]
        if clock is None and self.use_graph:
            if self._size != (h, w):
                self._capture(h, w)
            if self._graph is not None:
                self._static_in.copy_(frame_u8, non_blocking=True)
                self._graph.replay()
                return drop_unsure_islands(self._static_alpha, self.options.drop_islands, self.model.cfg.region_size)
        alpha = self._forward(frame_u8, clock)
        return drop_unsure_islands(alpha, self.options.drop_islands, self.model.cfg.region_size)

    def _capture(self, h: int, w: int) -> None:
        """Record the frame -> alpha pass for (h, w) as one CUDA graph; on failure stay eager and say why."""
        self._size = (h, w)
        self._graph = None
        self._static_in = torch.zeros((h, w, 3), dtype=torch.uint8, device=self.device)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up: cuDNN/cuBLAS pick kernels, caches fill, outside the capture
                    self._forward(self._static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._static_alpha = self._forward(self._static_in)
            self._graph = graph
            log.info("CUDA graph captured for %dx%d (budget %s)", w, h, self.options.region_budget)
        except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager, reported
            self.graph_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            log.warning("CUDA graph capture failed, running eagerly: %s", self.graph_error)
            self.use_graph = False
            torch.cuda.synchronize()

    @property
    def mode(self) -> str:
        """"cuda-graph" or "eager", for reports."""
        return "cuda-graph" if self._graph is not None else "eager"

    # ------------------------------------------------------------------ transfers
    def upload(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 numpy -> device tensor, through a pinned staging buffer (asynchronous DMA)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        if not self.is_cuda:
            return torch.from_numpy(np.ascontiguousarray(frame))
        if self._pinned_in is None or tuple(self._pinned_in.shape) != frame.shape:
            self._pinned_in = _staging_buffer(frame.shape, torch.uint8)
        # The previous upload from this buffer has finished: download() synchronises every frame.
        np.copyto(self._pinned_in.numpy(), frame)
        return self._pinned_in.to(self.device, non_blocking=True)

    def download(self, t: torch.Tensor) -> np.ndarray:
        """Device tensor -> numpy through a pinned buffer. The array is reused by the next call: copy to keep."""
        if not self.is_cuda:
            return t.detach().numpy()
        if self._pinned_out is None or self._pinned_out.shape != t.shape or self._pinned_out.dtype != t.dtype:
            self._pinned_out = _staging_buffer(tuple(t.shape), t.dtype)
        self._pinned_out.copy_(t, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return self._pinned_out.numpy()

    # ------------------------------------------------------------------ numpy API
    def matte(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 alpha (a reused buffer on CUDA; copy to keep)."""
        return self.download(self.matte_tensor(self.upload(frame))[0, 0])

    def set_background(self, background: np.ndarray) -> None:
        """Upload the (H, W, 3) uint8 background once; it stays on the device."""
        self._background = torch.from_numpy(np.ascontiguousarray(background)).to(self.device)

    @torch.inference_mode()
    def composite(self, frame: np.ndarray) -> np.ndarray:
        """End to end: upload the frame, matte it, composite over the background on the device, download.

        Returns the (H, W, 3) uint8 composite (a reused buffer on CUDA; copy to keep).
        """
        if self._background is None:
            raise RuntimeError("call set_background() first")
        dev = self.upload(frame)
        alpha = self.matte_tensor(dev)
        return self.download(composite_torch(dev, alpha, self._background))
