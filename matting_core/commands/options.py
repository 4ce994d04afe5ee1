"""Command-line options shared by several subcommands (one definition, one help text)."""

from __future__ import annotations

import argparse

from matting_core.config import CLEAR_BACKGROUND_BELOW, DROP_ISLANDS_BELOW, FILL_FOREGROUND_AT


def add_clear_background(p: argparse.ArgumentParser) -> None:
    """``--clear-background T``: the engine's ``EngineOptions.clear_background``."""
    p.add_argument("--clear-background", type=float, default=CLEAR_BACKGROUND_BELOW, metavar="T",
                   help="set alpha below T to 0 where the coarse trimap says background (removes the faint grey "
                        "a weak model leaves on furniture; 0 = off, the paper's plain paste; default %(default)s)")


def add_fill_foreground(p: argparse.ArgumentParser) -> None:
    """``--fill-foreground T``: the engine's ``EngineOptions.fill_foreground``."""
    p.add_argument("--fill-foreground", type=float, default=FILL_FOREGROUND_AT, metavar="T",
                   help="where the coarse trimap says foreground, divide alpha by T and clip to 1 (alpha >= T becomes "
                        "1: no see-through face from a weak model; 1 = off, the paper's plain paste; "
                        "default %(default)s)")


def add_drop_islands(p: argparse.ArgumentParser) -> None:
    """``--drop-islands T``: the engine's ``EngineOptions.drop_islands``."""
    p.add_argument("--drop-islands", type=float, default=DROP_ISLANDS_BELOW, metavar="T",
                   help="set to 0 every patch of alpha, apart from the largest, whose share of solid (alpha > 0.95) "
                        "cells is under T (removes furniture a weak model half-believes is a person; 0 = off; "
                        "default %(default)s)")
