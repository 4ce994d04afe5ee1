"""Low-resolution network (paper 3.1): Swin-T on the x16-tokenised frame -> decoder -> alpha + trimap at 1/8."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from matting_core.config import ModelConfig
from matting_core.swin_masked import build_swin, swin_features

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CoarseOutput:
    """Logits at 1/8 of the (16-padded) frame, plus deeper heads for deep supervision while training.

    alpha_logits: (B, 1, h8, w8); trimap_logits: (B, 3, h8, w8), classes 0=bg, 1=unknown, 2=fg.
    aux_*: lists of logits at 1/32 and 1/16 (empty in eval mode).
    """

    alpha_logits: torch.Tensor
    trimap_logits: torch.Tensor
    aux_alpha_logits: list[torch.Tensor]
    aux_trimap_logits: list[torch.Tensor]


class ShuffleHead(nn.Module):
    """1x1 conv to ``out * 4`` channels at scale 1/2^k, pixel-shuffled to ``out`` channels at twice the resolution.

    This is the paper's "4-channel output at 1/16 and a pixel-shuffle to 1/8": for the alpha head the four
    channels are the 2x2 sub-cells of each 1/16 cell, so a 1/8 cell (an 8x8 region of the frame) gets its own
    value without any interpolation. The trimap needs three classes per sub-cell, so it is a second head of
    3 x 4 = 12 channels shuffled the same way (this is what the authors' code does; one 4-channel map cannot
    hold an alpha and a 3-class trimap for four sub-cells at once).
    """

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out * 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class HeadPair(nn.Module):
    """Alpha (1 channel) and trimap (3 classes) heads on one decoder level."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = ShuffleHead(channels, 1)
        self.trimap = ShuffleHead(channels, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.alpha(x), self.trimap(x)


class UpBlock(nn.Module):
    """x2 bilinear upsample to the skip's size, concatenate the skip, one 3x3 conv + LeakyReLU (no norm)."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch + skip_ch, out_ch, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.act(self.conv(torch.cat([x, skip], dim=1)))


class CoarseNet(nn.Module):
    """Swin encoder (stride 16..128) + U-Net style decoder (1/64 -> 1/32 -> 1/16) + pixel-shuffle heads.

    Input: ``image`` (B, 3, H, W) RGB in [0, 1] with H, W multiples of ``patch_size`` (the model pads).
    The frame's own size is kept: Swin pads its token grids to the window and masks the padding
    (``matting_core.swin_masked``), so no resize to multiples of 224 ever happens.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = build_swin(
            cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.window_size, cfg.patch_size, cfg.drop_path_rate
        )
        widths = [cfg.embed_dim * 2**i for i in range(4)]
        d64, d32, d16 = cfg.decoder_channels
        self.up64 = UpBlock(widths[3], widths[2], d64)
        self.up32 = UpBlock(d64, widths[1], d32)
        self.up16 = UpBlock(d32, widths[0], d16)
        self.head8 = HeadPair(d16)  # 1/16 -> 1/8, feeds the refinement
        self.aux_heads = nn.ModuleList([HeadPair(d64), HeadPair(d32)])  # 1/64 -> 1/32, 1/32 -> 1/16
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor, extra_pad: int = 0) -> CoarseOutput:
        x = (image - self.mean) / self.std
        f16, f32, f64, f128 = (f.permute(0, 3, 1, 2) for f in swin_features(self.encoder, x, extra_pad))
        x64 = self.up64(f128, f64)
        x32 = self.up32(x64, f32)
        x16 = self.up16(x32, f16)
        alpha, trimap = self.head8(x16)
        aux_a: list[torch.Tensor] = []
        aux_t: list[torch.Tensor] = []
        if self.training:
            for head, feat in zip(self.aux_heads, (x64, x32)):
                a, t = head(feat)
                aux_a.append(a)
                aux_t.append(t)
        return CoarseOutput(alpha, trimap, aux_a, aux_t)
