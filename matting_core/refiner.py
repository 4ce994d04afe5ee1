"""Refinement network (paper 3.2 + 3.3): 8x8 RGBA patch -> encoder -> [CRA] -> decoder -> 8x8 alpha.

The encoder uses valid (unpadded) convolutions so each patch shrinks 8 -> 6 -> 4 -> 2 and every output
pixel sees only its own patch; a 2x2x64 bottleneck is pooled to one ``token_dim`` token per region for CRA,
whose output is projected back and added to the bottleneck. The decoder mirrors the encoder with valid
transposed convolutions and U-Net skips. Layer sizes follow the authors' public code (PAPER-NOTES 3).
"""

from __future__ import annotations

import torch
from torch import nn

from matting_core.cra import CrossRegionAttention


def _conv(cin: int, cout: int, k: int, transposed: bool = False) -> nn.Sequential:
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, kernel_size=k)
    return nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-3), nn.LeakyReLU(0.1))


class PatchEncoder(nn.Module):
    """(N, 4, 8, 8) -> skips [(N, 32, 8, 8), (N, 64, 4, 4)] and bottleneck (N, 64, 2, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.s8 = nn.Sequential(_conv(4, 32, 1), _conv(32, 32, 1))
        self.s4 = nn.Sequential(_conv(32, 64, 3), _conv(64, 64, 3))
        self.s2 = nn.Sequential(_conv(64, 64, 3), _conv(64, 64, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e8 = self.s8(x)
        e4 = self.s4(e8)
        return e8, e4, self.s2(e4)


class PatchDecoder(nn.Module):
    """Bottleneck (N, 64, 2, 2) + skips -> alpha residual (N, 1, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.d4 = nn.Sequential(_conv(64, 32, 1, True), _conv(32, 32, 3, True))  # 2 -> 4
        self.d8 = nn.Sequential(_conv(32 + 64, 32, 3, True), _conv(32, 32, 3, True))  # 4 -> 8
        self.out = nn.Sequential(_conv(32 + 32, 16, 1), _conv(16, 16, 1), nn.Conv2d(16, 1, kernel_size=1))

    def forward(self, b: torch.Tensor, e8: torch.Tensor, e4: torch.Tensor) -> torch.Tensor:
        x = self.d4(b)
        x = self.d8(torch.cat([x, e4], dim=1))
        return self.out(torch.cat([x, e8], dim=1))


class Refiner(nn.Module):
    """Refines N regions at once. ``use_cra=False`` is the paper's "w/o CRA" model (same layers, no attention).

    The decoder predicts a correction added to the patch's upsampled coarse alpha, then clamps to [0, 1]: an
    untrained refiner therefore leaves the coarse alpha as it is rather than writing noise into it (the
    authors predict alpha directly and clamp; the residual form trains faster from scratch).
    """

    def __init__(self, token_dim: int, heads: int, search_range: int) -> None:
        super().__init__()
        self.encoder = PatchEncoder()
        self.to_token = nn.Linear(64, token_dim)
        self.cra = CrossRegionAttention(token_dim, heads, search_range)
        self.from_token = nn.Linear(token_dim, 64)
        self.decoder = PatchDecoder()

    def forward(
        self,
        patches: torch.Tensor,
        coords: torch.Tensor | None = None,
        neighbour_index: torch.Tensor | None = None,
        neighbour_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """patches (N, 4, 8, 8) RGB in [0,1] + coarse alpha; the CRA inputs are None for the "w/o CRA" model."""
        e8, e4, b = self.encoder(patches)
        if neighbour_index is not None:
            token = self.to_token(b.mean(dim=(2, 3)))
            context = self.cra(token, coords, neighbour_index, neighbour_valid)
            b = b + self.from_token(context)[:, :, None, None]
        return (patches[:, 3:4] + self.decoder(b, e8, e4)).clamp(0.0, 1.0)
