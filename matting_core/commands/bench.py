"""``mattecam bench``: per-stage latency, FPS, GFLOPs and peak memory, next to the RVM peer (see matting_core.bench)."""

from __future__ import annotations

import argparse

NAME = "bench"


def register(subparsers: argparse._SubParsersAction) -> None:
    from matting_core import bench

    p = subparsers.add_parser(
        NAME,
        help="benchmark the model (per stage, CRA on/off, each backend) against the RVM peer",
        description=(bench.__doc__ or "").split("\n\n")[0],
    )
    bench.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matting_core import bench

    return bench.run(args)
