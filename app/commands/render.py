"""``mattecam render``: replace the background of a whole video file, every frame, with a progress bar.

    mattecam render --source talk.mp4 --background beach.jpg -o talk-beach.mp4
    mattecam render --source talk.mp4 --blur 70 -o talk-blur.avi
    mattecam render --source talk.mp4 --blur 70 --target-fps 15 -o quick.mp4   # faster, lower quality

Output codecs: .mp4/.mov (mp4v), .avi (MJPG), .mkv (FFV1). Audio is not copied.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.commands._common import (
    add_background_args,
    add_engine_args,
    background_from_args,
    check_smoothing,
    check_target_fps,
    engine_from_args,
)

NAME = "render"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="replace the background of a video file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, metavar="VIDEO", help="input video file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output video (.mp4, .avi, .mkv)")
    add_background_args(p)
    add_engine_args(p)
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from app.backgrounds import BackgroundError
    from app.compositor import Compositor
    from app.preview_views import quality_label
    from app.processing import FrameProcessor, MatteError
    from app.sinks import RecorderSink, SinkError
    from app.smoothing import TemporalSmoother
    from app.sources import SourceError, SourceLost, VideoFileSource

    source_path, out_path = Path(args.source), Path(args.output)
    if problem := check_smoothing(args.smoothing) or check_target_fps(args.target_fps):
        return _fail(problem, 2)
    if out_path.resolve() == source_path.resolve():
        return _fail("the output would overwrite the source video", 2)
    try:
        background = background_from_args(args)
        recorder = RecorderSink(out_path)
    except (BackgroundError, SinkError) as exc:
        return _fail(str(exc), 2)
    source = VideoFileSource(source_path, loop=False)
    try:
        info = source.open()
    except SourceError as exc:
        return _fail(str(exc), 2)
    recorder.fps = info.fps
    cap = cv2.VideoCapture(str(source_path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
    cap.release()
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)

    engine = engine_from_args(args)
    processor = FrameProcessor(engine, Compositor(background), TemporalSmoother(args.smoothing),
                               args.max_model_side, args.target_fps)
    failures = frames = 0
    start = time.perf_counter()
    progress = tqdm(total=total, unit="frame", desc=source_path.name, disable=args.no_progress, file=sys.stderr)
    try:
        while not args.max_frames or frames < args.max_frames:
            try:
                frame = source.read()
            except SourceLost:
                break
            try:
                result = processor.process(frame, frames)
            except MatteError as exc:
                failures += 1
                progress.write(f"warning: frame {frames}: {exc}; written unmatted")
                result = processor.passthrough(frame, frames, str(exc))
            t_write = processor.clock()
            try:
                recorder.send(result)
            except SinkError as exc:
                return _fail(str(exc))
            processor.extra_ms = (processor.clock() - t_write) * 1e3  # adaptive quality counts writing too
            frames += 1
            progress.update(1)
            postfix = {"ms": f"{result.timings_ms.get('total', 0):.0f}"}
            if result.quality is not None:
                postfix["quality"] = quality_label(result.quality).removeprefix("adaptive ")
            progress.set_postfix(postfix)
    except KeyboardInterrupt:
        progress.write("interrupted: the output holds the frames rendered so far")
    finally:
        progress.close()
        source.close()
        recorder.close()
    elapsed = time.perf_counter() - start
    if frames == 0:
        return _fail(f"{source_path.name} has no frames")
    print(f"wrote {out_path} ({frames} frames, {info.width}x{info.height} @ {info.fps:g} fps, "
          f"{1000 * elapsed / frames:.0f} ms/frame)")
    return 1 if failures else 0
