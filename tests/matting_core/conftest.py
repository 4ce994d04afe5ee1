"""Shared fixtures: a tiny model of the same design, so engine tests run in seconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from matting_core.config import ModelConfig
from matting_core.model import PortraitMattingModel

TINY = ModelConfig(
    embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), decoder_channels=(32, 16, 16), drop_path_rate=0.0
)


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return TINY


@pytest.fixture
def tiny_model() -> PortraitMattingModel:
    torch.manual_seed(0)
    return PortraitMattingModel(TINY).eval()
