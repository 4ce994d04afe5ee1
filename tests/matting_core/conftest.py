"""Engine fixtures: a tiny model of the same design (config: ``tiny_cfg`` in tests/conftest.py), one thread."""

from __future__ import annotations

import pytest
import torch

from matting_core.config import ModelConfig
from matting_core.model import PortraitMattingModel


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_model(tiny_cfg: ModelConfig) -> PortraitMattingModel:
    torch.manual_seed(0)
    return PortraitMattingModel(tiny_cfg).eval()
