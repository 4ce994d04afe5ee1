"""The unit of training data: one batch of composites with every target the losses need.

Every data source (folder readers + augmentation, the synthetic generator, the lead's packed GPU stream)
produces this one type, so the trainer and the losses never care where a batch came from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class TrainBatch:
    """A batch of training composites.

    image:  (B, 3, H, W) float RGB in [0, 1], the network input (alpha * fg + (1 - alpha) * bg, or a real photo).
    alpha:  (B, 1, H, W) float in [0, 1], ground-truth matte.
    fg:     (B, 3, H, W) float in [0, 1], foreground colours (for the composition loss).
    bg:     (B, 3, H, W) float in [0, 1], background colours (for the composition loss).
    trimap: (B, H, W) long, full-resolution target classes 0 = background, 1 = unknown, 2 = foreground.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    fg: torch.Tensor
    bg: torch.Tensor
    trimap: torch.Tensor

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a readable message when the tensors do not fit together."""
        if self.image.ndim != 4 or self.image.shape[1] != 3:
            raise ValueError(f"TrainBatch.image must be (B, 3, H, W), got {tuple(self.image.shape)}")
        b, _, h, w = self.image.shape
        expected = {"alpha": (b, 1, h, w), "fg": (b, 3, h, w), "bg": (b, 3, h, w), "trimap": (b, h, w)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"TrainBatch.{name} must be {shape} to match image, got {got}")
        if self.trimap.dtype != torch.long:
            raise ValueError(f"TrainBatch.trimap must be a long tensor of classes, got {self.trimap.dtype}")

    @property
    def batch_size(self) -> int:
        return int(self.image.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainBatch:
        """A copy with every tensor on ``device`` (non_blocking helps with pinned CPU memory)."""
        return TrainBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def pin_memory(self) -> TrainBatch:
        """Called by DataLoader(pin_memory=True) on custom batch types."""
        return TrainBatch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @classmethod
    def collate(cls, items: list[dict[str, torch.Tensor]]) -> TrainBatch:
        """DataLoader ``collate_fn`` for datasets yielding dicts of per-sample tensors (no batch dim)."""
        if not items:
            raise ValueError("cannot collate an empty list of samples")
        return cls(**{f.name: torch.stack([it[f.name] for it in items]) for f in fields(cls)})
