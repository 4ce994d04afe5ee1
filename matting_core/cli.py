"""Command-line entry for the engine's subcommands (``python -m matting_core``).

Each subcommand lives in its own module under ``matting_core.commands`` and exposes
``register(subparsers)``; the module's ``run(args) -> int`` is attached with ``set_defaults(func=...)``.
Command modules import torch lazily inside ``run`` so ``--help`` stays fast.
The ``mattecam`` entry point (``app.cli``) adds the app's commands (gui, stream, render) to these.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: Engine subcommand modules, in the order ``--help`` lists them.
CORE_COMMANDS: tuple[str, ...] = (
    "matting_core.commands.matte",
    "matting_core.commands.eval",
    "matting_core.commands.train",
    "matting_core.commands.label",
    "matting_core.commands.bench",
    "matting_core.commands.export_onnx",
)


def add_core_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register every engine subcommand on ``subparsers``."""
    for name in CORE_COMMANDS:
        importlib.import_module(name).register(subparsers)


def build_parser(prog: str = "mattecam", extra: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser with the engine's commands plus the modules named in ``extra``."""
    parser = argparse.ArgumentParser(prog=prog, description="Portrait matting engine and virtual camera.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_core_commands(sub)
    for name in extra:
        importlib.import_module(name).register(sub)
    return parser


def run_parser(parser: argparse.ArgumentParser, argv: Sequence[str] | None, default: str | None = None) -> int:
    """Parse ``argv`` and run the chosen command; ``default`` is used when none is given."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if getattr(args, "func", None) is None:
        if default is None:
            parser.print_help()
            return 2
        args = parser.parse_args([default, *(argv or [])])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run_parser(build_parser(prog="python -m matting_core"), argv)
