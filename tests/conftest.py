"""Fixtures shared by the engine and recipe tests: a tiny model config, a tiny training pack."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from matting_core.config import ModelConfig
from matting_core.data.packed import write_blob


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    """A tiny model of the paper's design (frozen, so one instance serves every scope): tests run in seconds."""
    return ModelConfig(
        embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), decoder_channels=(32, 16, 16), drop_path_rate=0.0
    )


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four people (an ellipse away from the borders, so all are pasteable), three scenes, two wallpapers,
    one person-free box, written in the layout of ``recipes/pack_data.py``."""
    out = tmp_path_factory.mktemp("pack")
    rng = np.random.default_rng(0)
    rgb, alpha, people = [], [], []
    for i in range(4):
        img = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
        a = np.zeros((120, 90), np.uint8)
        cv2.ellipse(a, (45, 60), (25, 40), 0, 0, 360, 255, -1)
        rgb.append(cv2.imencode(".jpg", img)[1].tobytes())
        alpha.append(cv2.imencode(".png", cv2.GaussianBlur(a, (5, 5), 0))[1].tobytes())
        people.append({"source": "test", "stem": str(i), "boxes": [[0, 0, 16]] if i == 0 else []})
    bgs = [cv2.imencode(".jpg", np.full((64, 64, 3), v, np.uint8))[1].tobytes() for v in (40, 90, 140, 190, 240)]
    index = {
        "people": people,
        "people_rgb": write_blob(out, "people_rgb", rgb),
        "people_alpha": write_blob(out, "people_alpha", alpha),
        "backgrounds": write_blob(out, "backgrounds", bgs),
        "background_kind": ["scene"] * 3 + ["wallpaper"] * 2,
    }
    (out / "index.json").write_text(json.dumps(index))
    return out
