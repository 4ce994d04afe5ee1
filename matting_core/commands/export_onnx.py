"""``mattecam export-onnx``: write the coarse and refinement stages as ONNX and check them against PyTorch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

NAME = "export-onnx"
#: Above this max |ONNX - PyTorch| on random inputs the export is reported as failed (fp32 graphs agree to ~1e-6).
TOLERANCE = 1e-3


def _size(text: str) -> tuple[int, int]:
    from matting_core.bench import parse_size

    return parse_size(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="export the coarse and refinement stages to ONNX (optionally with a static region budget)",
        description="Writes coarse.onnx (fixed frame size), refine_cra.onnx and refine_nocra.onnx plus "
        "manifest.json into --out, then runs each graph in ONNX Runtime (CPU) against PyTorch and prints "
        "the max |diff|. Run the export with `--backend onnxruntime` in `mattecam bench`, or load it with "
        "matting_core.backends.onnx_engine.OnnxMattingEngine.",
    )
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the default model, else random)")
    p.add_argument("--size", type=_size, default=(1280, 720), help="frame size WxH the coarse graph is for")
    p.add_argument("--budget", type=int, default=None,
                   help="static region budget: the refinement graphs take exactly this many regions "
                   "(for TensorRT / static-shape runtimes); default: any number")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: onnx/<W>x<H>[-b<budget>])")
    p.add_argument("--coarse-from", type=Path, default=None,
                   help="reuse the coarse graph of an earlier export of the same model and size (new budget only)")
    p.add_argument("--coarse-scale", type=float, default=None,
                   help="coarse input scale in [0.1, 1]: the coarse graph takes the frame shrunk by this (the "
                   "engine shrinks it with cv2 INTER_AREA), refinement stays at full resolution; 1 = full frame; "
                   "default: automatic like the PyTorch engine (the checkpoint's training size / the short side)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matting_core.backends.onnx_export import export_onnx
    from matting_core.engine import EngineOptions, MattingEngine

    w, h = args.size
    if args.budget is not None and args.budget < 1:
        print("error: --budget must be >= 1", file=sys.stderr)
        return 2
    out = args.out or Path("onnx") / (f"{w}x{h}" + (f"-b{args.budget}" if args.budget else ""))
    try:
        options = EngineOptions(coarse_scale=args.coarse_scale)
    except ValueError as exc:
        print(f"error: --coarse-scale: {exc}", file=sys.stderr)
        return 2
    engine = MattingEngine.load(args.model, options)
    if not engine.is_trained:
        print("warning: exporting RANDOM weights (no trained model found)", file=sys.stderr)
    scale = engine.effective_coarse_scale(h, w)  # None: the checkpoint's training size, as the engine does
    try:
        manifest = export_onnx(engine.model, out, w, h, budget=args.budget, check=not args.no_check,
                               coarse_from=args.coarse_from, trained=engine.is_trained, coarse_scale=scale)
    except ImportError as exc:
        print(f"error: ONNX export needs the onnx extra (`pip install -e .[onnx]`): {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    budget = f"static budget {args.budget} regions" if args.budget else "any number of regions"
    coarse = "coarse pass on the full frame"
    if manifest.scaled:
        how = ", automatic" if args.coarse_scale is None else ""
        coarse = f"coarse pass on {manifest.coarse_width}x{manifest.coarse_height} (scale {scale:.3g}{how})"
    print(f"wrote {out}/: " + ", ".join(manifest.files.values()) + f" ({w}x{h}, {budget}, {coarse})")
    worst = 0.0
    for name, diff in manifest.max_abs_diff.items():
        print(f"  max |ONNX Runtime - PyTorch| {name:<26} {diff:.3g}")
        worst = max(worst, diff)
    if manifest.max_abs_diff and worst > TOLERANCE:
        print(f"error: the export disagrees with PyTorch by {worst:.3g} (> {TOLERANCE})", file=sys.stderr)
        return 1
    return 0
