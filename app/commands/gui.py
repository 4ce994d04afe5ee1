"""``mattecam gui`` (also what plain ``mattecam`` runs): the desktop app."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "gui"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="open the desktop app (the default command)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", help="camera index or device path (saved as your choice)")
    src.add_argument("--source", metavar="FILE", help="a video file or picture instead of a camera")
    src.add_argument("--demo", action="store_true", help="start with the bundled demo clip")
    p.add_argument("--model", metavar="PATH", help="model checkpoint")
    p.add_argument("--device", choices=("cpu", "cuda"), help="where the model runs")
    p.add_argument("--settings", type=Path, metavar="PATH", help="settings file (default: your config folder)")
    p.add_argument("--reset-settings", action="store_true", help="start from the default settings")
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="save a screenshot once --frames composited frames were shown, then quit")
    p.add_argument("--frames", type=int, default=5, help="frames to wait for before --screenshot")
    p.set_defaults(func=run)


def _has_display() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def run(args: argparse.Namespace) -> int:
    from app.assets import IMAGE_SUFFIXES
    from app.settings import AppSettings, load_settings

    if not _has_display():
        print("error: no display found. For a virtual camera without a window use 'mattecam stream'; "
              "to run the window off-screen set QT_QPA_PLATFORM=offscreen.", file=sys.stderr)
        return 2
    settings, messages = (AppSettings(), []) if args.reset_settings else load_settings(args.settings)
    overrides: dict[str, object] = {}
    if args.camera is not None:
        overrides.update(source_kind="camera", camera=str(args.camera))
    elif args.source:
        kind = "image" if Path(args.source).suffix.lower() in IMAGE_SUFFIXES else "video"
        overrides.update(source_kind=kind, source_path=str(Path(args.source).resolve()))
    elif args.demo:
        overrides["source_kind"] = "demo"
    if args.model:
        overrides["model_path"] = str(Path(args.model).resolve())
    if args.device:
        overrides["device"] = args.device
    settings = settings.with_changes(**overrides)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("mattecam")
    window = MainWindow(settings, settings_path=args.settings, startup_messages=messages)
    window.show()
    status = {"code": 0}
    if args.screenshot:
        status["code"] = 1  # until the screenshot is saved
        deadline_ms = 180_000
        waited = {"ms": 0, "first": -1}
        timer = QTimer(window, interval=200)

        def check() -> None:
            waited["ms"] += 200
            last = window._last_preview
            ready = window.engine_info is not None and last is not None and not last.warning
            if ready and waited["first"] < 0:
                waited["first"] = window.preview.frames_shown  # count only frames from the real model
            if ready and window.preview.frames_shown - waited["first"] >= args.frames:
                timer.stop()
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                if window.grab().save(str(args.screenshot)):
                    print(f"saved {args.screenshot}")
                    status["code"] = 0
                window.close()
            elif waited["ms"] > deadline_ms:
                timer.stop()
                print("error: no composited frame arrived in time for the screenshot", file=sys.stderr)
                window.close()

        timer.timeout.connect(check)
        timer.start()
    app.exec()
    window.shutdown()
    window.pipeline.join(30.0)  # outputs are closed already; let a running model call finish before exit
    return status["code"]
