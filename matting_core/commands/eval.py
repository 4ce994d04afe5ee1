"""``mattecam eval``: score predicted mattes (or a model run over a dataset) with the benchmark metrics."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from matting_core.commands.options import add_clear_background, add_drop_islands, add_fill_foreground

log = logging.getLogger(__name__)

NAME = "eval"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="score mattes: SAD, SAD-T, MSE, Grad, Conn, IoU (P3M benchmark scaling)",
        description="Either --pred DIR --gt DIR (files matched by name), or --data DIR [--model PATH] to run the "
        "engine over a dataset (generic image/+alpha/, P3M-10k, PPM-100) and score it.",
    )
    p.add_argument("--pred", type=Path, help="folder of predicted alpha PNGs")
    p.add_argument("--gt", type=Path, help="folder of ground-truth alpha PNGs (same file stems)")
    p.add_argument("--trimap", type=Path, help="folder of 0/128/255 trimaps for SAD-T (default: generated from GT)")
    p.add_argument("--images", type=Path, help="folder of the photos (only for the worst-cases picture)")
    p.add_argument("--model", type=Path, help="checkpoint (.safetensors) to evaluate with --data (default model)")
    p.add_argument("--data", type=Path, help="dataset folder to run the model on")
    p.add_argument("--split", help="P3M-10k subset: P3M-500-P, P3M-500-NP or train")
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="score only the validation part of --data that a training run with "
                   "data.val_fraction = FRACTION held out (same hash split)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images of --data")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="downscale photos above this area for the model (PPM-100 protocol: 2073600)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (with --data)")
    p.add_argument("--no-cra", action="store_true", help="run the model without cross-region attention")
    p.add_argument("--coarse-scale", default="1",
                   help="scale of the coarse pass's input: 1 (default: the benchmark protocol, the coarse pass "
                        "sees the image as given), a number in [0.1, 1], or 'auto' (the engine's default: "
                        "the resolution the checkpoint was trained at)")
    add_clear_background(p)
    add_fill_foreground(p)
    add_drop_islands(p)
    p.add_argument("--out", type=Path, help="folder for predictions (with --data) and the markdown report")
    p.add_argument("--json", type=Path, help="write per-image and mean metrics as JSON here")
    p.add_argument("--worst", type=int, default=6, help="rows in the worst-cases picture")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matting_core.data.datasets import DatasetError, scan_dataset
    from matting_core.evaluate import (
        format_table,
        predict_dataset,
        score_folders,
        score_items,
        write_json,
        write_markdown,
    )

    if (args.pred is None) != (args.gt is None):
        print("eval: give both --pred and --gt", file=sys.stderr)
        return 2
    if (args.pred is None) == (args.data is None):
        print("eval: give either --pred DIR --gt DIR, or --data DIR [--model PATH]", file=sys.stderr)
        return 2
    try:
        if args.pred is not None:
            report = score_folders(args.pred, args.gt, args.trimap, args.images, progress=True)
            title = f"{args.pred} vs {args.gt}"
        else:
            from matting_core.checkpoint import CheckpointError
            from matting_core.engine import EngineOptions, MattingEngine

            samples = scan_dataset(args.data, split=args.split).samples
            if args.holdout:
                from matting_core.data.datasets import split_samples

                samples = split_samples(samples, args.holdout)[1]
                if not samples:
                    print(f"eval: no image of {args.data} falls in a {args.holdout} hold-out", file=sys.stderr)
                    return 1
            if args.limit:
                samples = samples[: args.limit]
            try:
                scale = None if str(args.coarse_scale).lower() == "auto" else float(args.coarse_scale)
                options = EngineOptions(device=args.device, use_cra=not args.no_cra, coarse_scale=scale,
                                        clear_background=args.clear_background,
                                        fill_foreground=args.fill_foreground,
                                        drop_islands=args.drop_islands)
                engine = MattingEngine.load(args.model, options)
            except (CheckpointError, ValueError) as exc:
                print(f"eval: {exc}", file=sys.stderr)
                return 1
            out = args.out or Path("runs") / "eval"
            items, problems = predict_dataset(engine.matte, samples, out / "pred", args.max_pixels)
            report = score_items(items, progress=False)
            report.notes = [*problems, *report.notes]
            if not engine.is_trained:
                report.notes.insert(0, "the model has RANDOM weights (no checkpoint found)")
            title = f"{args.model or 'default model'} on {args.data}" + (f" ({args.split})" if args.split else "")
    except DatasetError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
    if not report.scores:
        print("eval: no image could be scored:\n  " + "\n  ".join(report.notes), file=sys.stderr)
        return 1
    print(format_table(report, title))
    for note in report.notes:
        print(f"note: {note}")
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.out:
        path = write_markdown(report, args.out, title=f"Matting evaluation: {title}", worst=args.worst)
        print(f"wrote {path}")
    return 0
