"""timm's Swin Transformer run on token grids of any size, with padded tokens masked out of attention.

timm's own block pads the (already shifted) grid with zeros and lets those zero tokens take part in window
attention, so a frame's output depends on how much padding its size needed. Section 3.4 of the paper pads
feature maps to multiples of the window and *masks the padded tokens out* instead. This module keeps timm's
modules and parameters (so checkpoints stay timm-shaped) and only replaces the block's window-attention
driver: pad bottom/right to a multiple of the window, cyclically shift, partition, attend with the shift mask
plus a key-padding mask, and undo it all.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import (
    SwinTransformer,
    SwinTransformerBlock,
    window_partition,
    window_reverse,
)

#: Additive logit for forbidden query/key pairs (timm's own value; finite, so rows never become NaN).
_MASKED = -100.0


def _build_window_mask(h: int, w: int, hp: int, wp: int, ws: int, shift: int) -> torch.Tensor:
    """(num_windows, ws*ws, ws*ws) additive mask: shift regions + padded keys, for an (h, w) grid padded to (hp, wp)."""
    region = torch.zeros(hp, wp)
    if shift:
        cuts = ((0, hp - ws), (hp - ws, hp - shift), (hp - shift, hp))
        cuts_w = ((0, wp - ws), (wp - ws, wp - shift), (wp - shift, wp))
        label = 0
        for y0, y1 in cuts:
            for x0, x1 in cuts_w:
                region[y0:y1, x0:x1] = label
                label += 1
    valid = torch.zeros(hp, wp)
    valid[:h, :w] = 1.0
    if shift:  # the same roll the features get, so labels line up with the shifted tokens
        valid = torch.roll(valid, shifts=(-shift, -shift), dims=(0, 1))
    region_w = window_partition(region[None, :, :, None], (ws, ws)).reshape(-1, ws * ws)
    valid_w = window_partition(valid[None, :, :, None], (ws, ws)).reshape(-1, ws * ws)
    mask = torch.zeros(region_w.shape[0], ws * ws, ws * ws)
    mask = mask.masked_fill(region_w[:, None, :] != region_w[:, :, None], _MASKED)
    mask = mask.masked_fill(valid_w[:, None, :] == 0, _MASKED)
    return mask


@functools.lru_cache(maxsize=256)
def _window_mask(
    h: int, w: int, hp: int, wp: int, ws: int, shift: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The mask on the model's device, cached: a per-block host-to-device copy would stall the GPU each block."""
    with torch.inference_mode(False):  # a normal tensor, so a mask made while serving also works in training
        return _build_window_mask(h, w, hp, wp, ws, shift).to(device=device, dtype=dtype)


def masked_window_attention(block: SwinTransformerBlock, x: torch.Tensor, extra_pad: int = 0) -> torch.Tensor:
    """Shifted-window attention of ``block`` on ``x`` (B, H, W, C) with padded tokens masked out.

    ``extra_pad`` adds that many more windows of padding (tests use it to show the output does not depend on
    the amount of padding).
    """
    _, h, w, c = x.shape
    ws = block.window_size[0]
    shift = block.shift_size[0]
    hp = -(-h // ws) * ws + extra_pad * ws
    wp = -(-w // ws) * ws + extra_pad * ws
    x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    windows = window_partition(x, (ws, ws)).reshape(-1, ws * ws, c)
    mask = _window_mask(h, w, hp, wp, ws, shift, x.device, x.dtype)
    windows = block.attn(windows, mask=mask)
    x = window_reverse(windows.reshape(-1, ws, ws, c), (ws, ws), hp, wp)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x[:, :h, :w, :]


def block_forward(block: SwinTransformerBlock, x: torch.Tensor, extra_pad: int = 0) -> torch.Tensor:
    """timm's block forward (pre-norm attention + MLP, residuals) with the masked attention driver."""
    b, h, w, c = x.shape
    x = x + block.drop_path1(masked_window_attention(block, block.norm1(x), extra_pad))
    x = x.reshape(b, -1, c)
    x = x + block.drop_path2(block.mlp(block.norm2(x)))
    return x.reshape(b, h, w, c)


def build_swin(
    embed_dim: int,
    depths: tuple[int, ...],
    num_heads: tuple[int, ...],
    window_size: int,
    patch_size: int,
    drop_path_rate: float,
) -> SwinTransformer:
    """timm Swin with the given patch size; built at a size where no stage shrinks its window.

    timm clips a stage's window to its grid when the grid is smaller than the window at construction time;
    building at 2^(stages-1) * window tokens keeps every stage at the full window, which the masked driver
    then pads to at any input size.
    """
    tokens = window_size * 2 ** (len(depths) - 1)
    model = SwinTransformer(
        img_size=tokens * patch_size,
        patch_size=patch_size,
        in_chans=3,
        num_classes=0,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
        window_size=window_size,
        drop_path_rate=drop_path_rate,
        strict_img_size=False,
    )
    # The classifier's final norm/head are never used; dropping them keeps DDP free of unused parameters.
    model.norm = torch.nn.Identity()
    model.head = torch.nn.Identity()
    return model


def swin_features(model: SwinTransformer, x: torch.Tensor, extra_pad: int = 0) -> list[torch.Tensor]:
    """Per-stage outputs (B, h_i, w_i, C_i), NHWC, for an image ``x`` (B, 3, H, W) with H, W multiples of the patch."""
    x = model.patch_embed(x)  # (B, H/p, W/p, C)
    feats = []
    for stage in model.layers:
        x = stage.downsample(x)
        for block in stage.blocks:
            x = block_forward(block, x, extra_pad)
        feats.append(x)
    return feats
