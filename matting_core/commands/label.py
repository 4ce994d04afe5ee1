"""``mattecam label``: make distillation targets: alpha mattes for a folder of photos from a teacher ONNX model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "label"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="label photos with a teacher ONNX matting model (e.g. RVM) -> OUT/alpha/*.png for training",
        description="Writes OUT/alpha/<stem>.png for every image in --images and links OUT/image to it, the "
        "layout `mattecam train` reads (data.root = OUT). Existing labels are kept unless --overwrite.",
    )
    p.add_argument("--model", type=Path, required=True, help="teacher .onnx (RVM interface detected automatically)")
    p.add_argument("--images", type=Path, required=True, help="folder of photos")
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    p.add_argument("--passes", type=int, default=2, help="RVM: runs per photo, feeding the recurrent state back")
    p.add_argument("--downsample-ratio", type=float, help="RVM: fixed ratio (default: RVM's rule per size)")
    p.add_argument("--providers", default="cpu", help="onnxruntime provider: cpu, cuda, tensorrt, auto")
    p.add_argument("--threads", type=int, help="CPU threads for onnxruntime")
    p.add_argument("--overwrite", action="store_true", help="relabel images that already have an alpha")
    p.add_argument("--no-link", action="store_true", help="do not create OUT/image -> --images")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matting_core.data.datasets import DatasetError
    from matting_core.distill import label_folder, load_teacher

    try:
        teacher = load_teacher(args.model, args.providers, args.threads, args.passes, args.downsample_ratio)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"label: cannot load teacher {args.model}: {exc}", file=sys.stderr)
        return 1
    try:
        report = label_folder(teacher, args.images, args.out, overwrite=args.overwrite, link_images=not args.no_link)
    except DatasetError as exc:
        print(f"label: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(report.written)} alpha mattes to {args.out / 'alpha'}"
          + (f", kept {len(report.skipped_existing)} existing" if report.skipped_existing else ""))
    for p in report.unreadable:
        print(f"unreadable, skipped: {p}")
    for p in report.problems:
        print(f"note: {p}")
    return 0 if report.written or report.skipped_existing else 1
