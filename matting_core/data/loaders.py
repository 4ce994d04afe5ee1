"""torch Datasets producing per-sample tensors for ``TrainBatch.collate``: folders of photos with alpha
(compositing + augmentation) and procedural synthetic composites.

Randomness: each ``__getitem__`` draws its seed from torch's global generator, which DataLoader seeds
differently per worker and per epoch, and which the trainer saves and restores on resume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from matting_core.data.augment import AugmentConfig, augment_sample, to_tensors
from matting_core.data.composite import ForegroundCache, random_background
from matting_core.data.datasets import DatasetError, Sample, load_sample
from matting_core.data.synthetic import synthetic_sample

log = logging.getLogger(__name__)

#: How many other samples to try when one cannot be read before giving up.
MAX_SKIPS = 20


def _draw_seed() -> int:
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


class FolderCompositeDataset(Dataset):
    """Photos + alpha from a reader, composited onto random backgrounds and augmented to ``cfg.size``."""

    def __init__(
        self,
        samples: Sequence[Sample],
        cfg: AugmentConfig,
        backgrounds: Sequence[Path] = (),
        fg_cache: Path | str | None = None,
    ) -> None:
        if not samples:
            raise DatasetError("no training samples")
        self.samples = list(samples)
        self.cfg = cfg
        self.backgrounds = list(backgrounds)
        self.cache = ForegroundCache(fg_cache)
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(_draw_seed())
        for attempt in range(MAX_SKIPS):
            i = (index + attempt) % len(self.samples)
            if i in self._bad:
                continue
            s = self.samples[i]
            try:
                photo, alpha = load_sample(s)
            except DatasetError as exc:
                self._bad.add(i)  # per worker; the name is logged once per worker
                log.warning("skipping unreadable sample: %s", exc)
                continue
            fg, bg = self.cache.get(s.image, s.alpha, photo, alpha)
            new_bg = random_background(self.backgrounds, (self.cfg.size, self.cfg.size), rng)
            out = augment_sample(photo.astype(np.float32) / 255.0, alpha, fg, bg, new_bg, self.cfg, rng)
            return to_tensors(out)
        raise DatasetError(f"{MAX_SKIPS} samples in a row could not be read (starting at {self.samples[index].name})")


class SyntheticDataset(Dataset):
    """``length`` procedural composites at ``size``; fixed per index when ``fixed`` (validation), else fresh."""

    def __init__(self, size: int, length: int, seed: int = 0, fixed: bool = False, trimap_kernel: int = 7) -> None:
        if length < 1:
            raise ValueError("synthetic dataset length must be >= 1")
        self.size, self.length, self.seed, self.fixed, self.kernel = size, length, seed, fixed, trimap_kernel

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        seed = self.seed if self.fixed else _draw_seed()
        return to_tensors(synthetic_sample(self.size, seed, index, self.kernel))
