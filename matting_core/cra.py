"""Cross Region Attention (paper 3.3): each region attends over its k nearest uncertain regions.

Tokens are stacked centre first: ``[f_i, f_i1, ..., f_ik]`` (k+1 tokens). Relative positions between tokens
(in cell units) index a learnable table of ``(2s-1)^2 + 1`` biases per head: the first ``(2s-1)^2`` slots
cover every offset with ``|dy|, |dx| <= s-1`` in row-major order, the last slot is shared by every
out-of-range offset (checked per axis, as in the paper's Fig. 2). Two pre-norm attention blocks follow:
the first attends between all k+1 tokens, the second only from the centre query (Q_0 K^T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_index(delta: torch.Tensor, search_range: int) -> torch.Tensor:
    """Table slot of each offset ``delta`` (..., 2) = (dy, dx) in cells; out of range -> the last slot.

    For s=3 (Fig. 2): the centre (0, 0) is slot 12 (the 13th counting from 1), (-1, -2) is slot 5 (the 6th).
    """
    span = 2 * search_range - 1
    dy, dx = delta[..., 0], delta[..., 1]
    in_range = (dy.abs() < search_range) & (dx.abs() < search_range)
    flat = (dy + search_range - 1) * span + (dx + search_range - 1)
    return torch.where(in_range, flat, torch.full_like(flat, span * span))


class RelativePositionBias(nn.Module):
    """The lookup table P: ``(2s-1)^2 + 1`` entries per head, zero-initialised, shared by both blocks."""

    def __init__(self, search_range: int, heads: int) -> None:
        super().__init__()
        self.search_range = search_range
        self.table = nn.Parameter(torch.zeros((2 * search_range - 1) ** 2 + 1, heads))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """``positions`` (N, T, 2) cell coordinates of each token group -> bias (N, heads, T, T)."""
        delta = positions[:, None, :, :] - positions[:, :, None, :]  # (N, Tq, Tk, 2): key - query
        return self.table[relative_position_index(delta, self.search_range)].permute(0, 3, 1, 2)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head attention + MLP. ``centre_only`` queries from token 0 alone and updates it alone."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor, centre_only: bool) -> torch.Tensor:
        """tokens (N, T, d); bias (N, heads, T, T) additive, -inf where a key is padding. Returns (N, T', d)."""
        n, t, d = tokens.shape
        q, k, v = self.qkv(self.norm1(tokens)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if centre_only:
            q, bias, tokens = q[:, :, :1], bias[:, :, :1], tokens[:, :1]
        # Scale 1/sqrt(head dim) (SDPA's default), which is what multi-head attention uses per head.
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        x = tokens + self.proj(att.transpose(1, 2).reshape(n, -1, d))
        return x + self.mlp(self.norm2(x))


class CrossRegionAttention(nn.Module):
    """Two CRA blocks over each region's KNN group; returns the updated centre token of every region."""

    def __init__(self, dim: int, heads: int, search_range: int) -> None:
        super().__init__()
        self.bias = RelativePositionBias(search_range, heads)
        self.block1 = AttentionBlock(dim, heads)
        self.block2 = AttentionBlock(dim, heads)

    def forward(
        self, tokens: torch.Tensor, coords: torch.Tensor, neighbour_index: torch.Tensor, neighbour_valid: torch.Tensor
    ) -> torch.Tensor:
        """tokens (N, d); coords (N, 2) cells; neighbour_index/valid (N, k). Returns (N, d)."""
        n = tokens.shape[0]
        group = torch.cat([torch.arange(n, device=tokens.device)[:, None], neighbour_index], dim=1)  # (N, k+1)
        valid = torch.cat([torch.ones_like(neighbour_valid[:, :1]), neighbour_valid], dim=1)
        bias = self.bias(coords[group])  # (N, H, T, T)
        bias = bias.masked_fill(~valid[:, None, None, :], float("-inf"))
        x = self.block1(tokens[group], bias, centre_only=False)
        return self.block2(x, bias, centre_only=True)[:, 0]
