"""Recipe tests load each script under recipes/ (not a package) as a module by its file name."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="session")
def load_recipe() -> Callable[[str], ModuleType]:
    """``load_recipe("train_default")`` -> the freshly executed module of recipes/train_default.py."""

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
