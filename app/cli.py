"""``mattecam``: the engine's commands plus the app's (gui, stream, render).

With no command, ``mattecam`` opens the desktop app.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from matting_core.cli import build_parser, run_parser

#: App subcommand modules; each exposes ``register(subparsers)``.
APP_COMMANDS: tuple[str, ...] = (
    "app.commands.gui",
    "app.commands.stream",
    "app.commands.render",
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog="mattecam", extra=APP_COMMANDS)
    default = "gui" if "app.commands.gui" in APP_COMMANDS else None
    return run_parser(parser, argv, default=default)


if __name__ == "__main__":
    sys.exit(main())
