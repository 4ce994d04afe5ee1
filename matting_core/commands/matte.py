"""``mattecam matte INPUT... -o OUTDIR``: alpha mattes for images, folders of images and videos."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from matting_core.commands.options import add_clear_background, add_drop_islands, add_fill_foreground

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "matte",
        help="write alpha mattes (8-bit PNG) for images, folders and videos",
        description="Write an 8-bit alpha PNG per image (named after its stem) into OUTDIR. A video gives a "
        "folder of per-frame PNGs (OUTDIR/<stem>/000000.png ...) or, with --alpha-video, one grayscale video.",
    )
    p.add_argument("inputs", nargs="+", type=Path, help="image files, folders of images, or video files")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (.safetensors); default: models/default")
    p.add_argument("--no-cra", action="store_true", help="refine without Cross Region Attention (paper's w/o CRA)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu with a message)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"], help="GPU only")
    p.add_argument("--budget", type=int, default=None, help="refine at most N regions (default: all uncertain)")
    p.add_argument("--coarse-scale", type=float, default=None,
                   help="scale of the coarse pass's input (refinement stays full-res); default: automatic, "
                        "from the resolution the model was trained at")
    add_clear_background(p)
    add_fill_foreground(p)
    add_drop_islands(p)
    p.add_argument("--alpha-video", action="store_true", help="write videos' alpha as OUTDIR/<stem>.alpha.avi")
    p.set_defaults(func=run)


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    """Files to process (folders expanded, sorted) and problems found on the way."""
    files, problems = [], []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                problems.append(f"{path}: folder has no images or videos")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def _matte_video(engine, path: Path, out: Path, alpha_video: bool) -> int:
    import cv2
    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError("cannot open video")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer, folder, n = None, out / path.stem, 0
    try:
        with tqdm(total=total, desc=path.name, unit="frame") as bar:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                alpha = (engine.matte(frame, "bgr") * 255.0 + 0.5).astype("uint8")
                if alpha_video:
                    if writer is None:
                        h, w = alpha.shape
                        writer = cv2.VideoWriter(str(out / f"{path.stem}.alpha.avi"),
                                                 cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h), isColor=False)
                    writer.write(alpha)
                else:
                    folder.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(folder / f"{n:06d}.png"), alpha)
                n += 1
                bar.update(1)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        raise ValueError("video has no readable frames")
    return n


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from matting_core.checkpoint import CheckpointError
    from matting_core.engine import EngineOptions, MattingEngine

    files, problems = expand_inputs(args.inputs)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not files:
        print("error: nothing to matte", file=sys.stderr)
        return 1
    try:
        options = EngineOptions(
            device=args.device, precision=args.precision, use_cra=not args.no_cra, region_budget=args.budget,
            coarse_scale=args.coarse_scale, clear_background=args.clear_background,
            fill_foreground=args.fill_foreground, drop_islands=args.drop_islands,
        )
        engine = MattingEngine.load(args.model, options)
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    failed = len(problems)
    images = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    for path in tqdm(images, desc="images", unit="img", disable=len(images) < 2):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            print(f"error: {path}: not a readable image, skipped", file=sys.stderr)
            failed += 1
            continue
        alpha = engine.matte(frame, "bgr")
        cv2.imwrite(str(args.out / f"{path.stem}.png"), (alpha * 255.0 + 0.5).astype("uint8"))
    for path in videos:
        try:
            n = _matte_video(engine, path, args.out, args.alpha_video)
            log.info("%s: %d frames", path, n)
        except ValueError as exc:
            print(f"error: {path}: {exc}, skipped", file=sys.stderr)
            failed += 1
    done = len(images) + len(videos) - (failed - len(problems))
    print(f"wrote mattes for {done} input(s) to {args.out}" + (f"; {failed} failed" if failed else ""))
    if not engine.is_trained:
        print("WARNING: these mattes come from an UNTRAINED model (random weights)", file=sys.stderr)
    return 1 if failed else 0
