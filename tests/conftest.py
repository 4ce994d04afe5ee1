"""Fixtures shared by the engine and recipe tests: a tiny model config, a tiny training pack."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def write_test_pack(out: Path, people_rgb: list[bytes], people_alpha: list[bytes], backgrounds: list[bytes],
                    background_kind: list[str], boxes: list[list[list[int]]] | None = None) -> Path:
    """Write encoded people and backgrounds in the layout of ``recipes/pack_data.py``, so each test pack
    states only its pictures."""
    index = {
        "people": [{"source": "test", "stem": str(i), "boxes": boxes[i] if boxes else []}
                   for i in range(len(people_rgb))],
        "people_rgb": write_blob(out, "people_rgb", people_rgb),
        "people_alpha": write_blob(out, "people_alpha", people_alpha),
        "backgrounds": write_blob(out, "backgrounds", backgrounds),
        "background_kind": background_kind,
    }
    (out / "index.json").write_text(json.dumps(index))
    return out


@pytest.fixture(scope="session")
def pack_writer() -> Callable[..., Path]:
    """``write_test_pack`` for test modules that build a pack of their own pictures."""
    return write_test_pack


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four people (an ellipse away from the borders, so all are pasteable), three scenes, two wallpapers,
    one person-free box, written in the layout of ``recipes/pack_data.py``."""
    rng = np.random.default_rng(0)
    rgb, alpha = [], []
    for _ in range(4):
        img = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
        a = np.zeros((120, 90), np.uint8)
        cv2.ellipse(a, (45, 60), (25, 40), 0, 0, 360, 255, -1)
        rgb.append(cv2.imencode(".jpg", img)[1].tobytes())
        alpha.append(cv2.imencode(".png", cv2.GaussianBlur(a, (5, 5), 0))[1].tobytes())
    bgs = [cv2.imencode(".jpg", np.full((64, 64, 3), v, np.uint8))[1].tobytes() for v in (40, 90, 140, 190, 240)]
    return write_test_pack(tmp_path_factory.mktemp("pack"), rgb, alpha, bgs, ["scene"] * 3 + ["wallpaper"] * 2,
                           boxes=[[[0, 0, 16]], [], [], []])
