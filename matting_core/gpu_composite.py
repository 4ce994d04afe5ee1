"""Compositing where the alpha already is, so a frame crosses the bus only twice (camera frame up, result down).

``composite_torch`` runs on any torch device (on CUDA it is a handful of fused element-wise kernels);
``composite_numpy`` is the reference the GPU result is checked against. Both compute, per pixel and channel,
``round(a * fg + (1 - a) * bg)`` in float32 and return uint8.
"""

from __future__ import annotations

import numpy as np
import torch


def _check(frame_shape: tuple[int, ...], alpha_shape: tuple[int, ...], bg_shape: tuple[int, ...]) -> None:
    if len(frame_shape) != 3 or frame_shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3), got {tuple(frame_shape)}")
    if tuple(alpha_shape) != tuple(frame_shape[:2]):
        raise ValueError(f"alpha must be (H, W) = {tuple(frame_shape[:2])}, got {tuple(alpha_shape)}")
    if tuple(bg_shape) != tuple(frame_shape):
        raise ValueError(f"background must match the frame {tuple(frame_shape)}, got {tuple(bg_shape)}")


def composite_numpy(frame: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Reference composite. ``frame``, ``background``: (H, W, 3) uint8; ``alpha``: (H, W) float in [0, 1]."""
    _check(frame.shape, alpha.shape, background.shape)
    a = np.clip(alpha.astype(np.float32), 0.0, 1.0)[..., None]
    fg = frame.astype(np.float32)
    bg = background.astype(np.float32)
    out = bg + a * (fg - bg)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def composite_torch(frame: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The same composite on ``frame``'s device. ``frame``, ``background``: (H, W, 3) uint8 tensors;
    ``alpha``: (H, W), (1, H, W) or (1, 1, H, W) float tensor in [0, 1] (any float dtype). Returns (H, W, 3) uint8.
    """
    a = alpha.reshape(alpha.shape[-2:]) if alpha.dim() > 2 else alpha
    _check(tuple(frame.shape), tuple(a.shape), tuple(background.shape))
    if frame.dtype != torch.uint8 or background.dtype != torch.uint8:
        raise ValueError("frame and background must be uint8 tensors")
    a = a.float().clamp(0.0, 1.0).unsqueeze(-1)
    fg = frame.float()
    bg = background.float()
    out = bg + a * (fg - bg)
    return out.round_().clamp_(0, 255).to(torch.uint8)
