"""Arguments shared by ``mattecam stream`` and ``mattecam render`` (background and engine choice)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_background_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--background", metavar="PIC", help="background picture (default: the first bundled one)")
    group.add_argument("--blur", metavar="N", type=int, help="blur your own room instead, strength 0-100")
    group.add_argument("--color", metavar="#RRGGBB", help="a solid colour background")
    group.add_argument("--video-background", metavar="VIDEO", help="a looping video background")
    parser.add_argument("--smoothing", type=float, default=0.3, metavar="S",
                        help="temporal smoothing of edge flicker, 0 (off) to 0.9 (default 0.3)")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cra", action="store_true", help="turn Cross Region Attention off (faster)")
    parser.add_argument("--model", metavar="PATH", default="", help="model checkpoint (default: models/)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the model runs (cuda falls back to the CPU when absent)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="inference runtime (onnxruntime needs --onnx-dir)")
    parser.add_argument("--onnx-dir", default="", metavar="DIR", help="folder written by mattecam export-onnx")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the model")
    parser.add_argument("--max-model-side", type=int, default=3840, metavar="PX",
                        help="matte larger frames at this size and scale the alpha back (CPU load cap)")
    parser.add_argument("--target-fps", type=int, default=0, metavar="N",
                        help="adaptive quality: refine fewer edge regions, then matte at a lower resolution, "
                             "to hold N frames per second (default 0 = off, full quality)")


def background_from_args(args: argparse.Namespace) -> Any:
    """The Background the arguments ask for; raises BackgroundError with a readable message."""
    from app.assets import default_background
    from app.backgrounds import BackgroundError, BackgroundSpec, load_background

    if args.blur is not None:
        spec = BackgroundSpec(mode="blur", blur_strength=args.blur)
    elif args.color is not None:
        spec = BackgroundSpec(mode="color", color=args.color)
    elif args.video_background is not None:
        spec = BackgroundSpec(mode="video", path=args.video_background)
    else:
        path = args.background or str(default_background() or "")
        if not path:
            raise BackgroundError("no --background given and no bundled pictures found")
        spec = BackgroundSpec(mode="image", path=path)
    return load_background(spec)


def engine_from_args(args: argparse.Namespace) -> Any:
    """Load the engine, printing every fallback (missing model, no GPU) to stderr."""
    from app.engine_loader import EngineRequest, load_engine

    loaded = load_engine(EngineRequest(model_path=args.model, device=args.device, use_cra=not args.no_cra,
                                       threads=args.threads, backend=args.backend, onnx_dir=args.onnx_dir))
    logged_by_engine = set(getattr(loaded.engine, "notes", []))
    for message in loaded.messages:
        if message not in logged_by_engine:
            print(f"warning: {message}", file=sys.stderr)
    print(f"model: {loaded.description}; CRA {'off' if args.no_cra else 'on'}", file=sys.stderr)
    return loaded.engine


def check_smoothing(value: float) -> str | None:
    if not 0.0 <= value <= 0.9:
        return f"--smoothing must be between 0 and 0.9, got {value}"
    return None


def check_target_fps(value: int) -> str | None:
    from app.settings import MAX_TARGET_FPS

    if not 0 <= value <= MAX_TARGET_FPS:
        return f"--target-fps must be between 0 (off) and {MAX_TARGET_FPS}, got {value}"
    return None
