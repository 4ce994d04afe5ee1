"""``mattecam stream``: camera in, background replaced, virtual camera out, no window.

    mattecam stream --camera 0 --background office.jpg
    mattecam stream --camera /dev/video2 --blur 60 --no-cra
    mattecam stream --source assets/demo.mp4          # no camera: stream the demo clip
    mattecam stream --target-fps 24                    # weak laptop: lower the quality to hold 24 FPS
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from app.commands._common import (
    add_background_args,
    add_engine_args,
    background_from_args,
    check_smoothing,
    check_target_fps,
    engine_from_args,
)

NAME = "stream"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(NAME, help="replace the background and feed a virtual camera (no window)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", default="0", help="camera index or device path (default 0)")
    src.add_argument("--source", metavar="VIDEO", help="a video file (looped) instead of a camera")
    p.add_argument("--resolution", choices=("720p", "1080p", "4K"), default="720p")
    p.add_argument("--fps", type=int, default=30)
    add_background_args(p)
    add_engine_args(p)
    p.add_argument("--vcam-backend", default=None, help="pyvirtualcam backend (default: the OS's own)")
    p.add_argument("--vcam-device", default=None, help="virtual camera device, e.g. /dev/video10")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl+C)")
    p.add_argument("--stats-every", type=float, default=2.0, help="seconds between status lines")
    p.set_defaults(func=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from app.backgrounds import BackgroundError
    from app.compositor import Compositor
    from app.pipeline import Pipeline, PipelineEvent
    from app.preview_views import quality_label
    from app.processing import FrameProcessor
    from app.settings import RESOLUTIONS
    from app.sinks import SinkError, VirtualCameraSink
    from app.smoothing import TemporalSmoother
    from app.sources import SourceError, SourceSpec, make_source

    if problem := check_smoothing(args.smoothing) or check_target_fps(args.target_fps):
        return _fail(problem, 2)
    try:
        background = background_from_args(args)
    except BackgroundError as exc:
        return _fail(str(exc), 2)

    width, height = RESOLUTIONS[args.resolution]
    spec = (SourceSpec("video", args.source) if args.source
            else SourceSpec("camera", str(args.camera), width, height, args.fps))
    probe = make_source(spec)
    try:
        info = probe.open()  # fail early with a clear message instead of retrying forever
    except SourceError as exc:
        hint = " Try: mattecam stream --source assets/demo.mp4" if spec.kind == "camera" else ""
        return _fail(f"{exc}{hint}")
    finally:
        probe.close()
    print(f"source: {info.description}" + (f" ({info.note})" if info.note else ""), file=sys.stderr)

    vcam = VirtualCameraSink(fps=info.fps, backend=args.vcam_backend, device=args.vcam_device)
    try:
        vcam.open(info.width, info.height)  # before the slow model load: no device, no point
    except SinkError as exc:
        return _fail(str(exc), 3)
    print(f"virtual camera {vcam.status}", file=sys.stderr)

    engine = engine_from_args(args)
    fatal = threading.Event()
    failure: list[str] = []

    def on_event(event: PipelineEvent) -> None:  # the pipeline already logs every event
        if event.topic == "sink:virtual camera":
            failure.append(event.message)
            fatal.set()

    processor = FrameProcessor(engine, Compositor(background), TemporalSmoother(args.smoothing),
                               args.max_model_side, args.target_fps)
    pipeline = Pipeline(engine, processor, [vcam], on_event=on_event)
    pipeline.start(lambda: make_source(spec))
    start = time.monotonic()
    try:
        while not fatal.wait(args.stats_every):
            stats = pipeline.stats
            t = stats.last_timings_ms
            adaptive = f" | {quality_label(stats.quality)}" if stats.quality is not None else ""
            print(f"{stats.fps:5.1f} fps | matte {t.get('matte', 0):4.0f} ms | composite "
                  f"{t.get('composite', 0):3.0f} ms | latency {t.get('latency', 0):4.0f} ms | "
                  f"dropped {stats.dropped} | virtual camera {vcam.status}{adaptive}", flush=True)
            if args.duration and time.monotonic() - start >= args.duration:
                break
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        pipeline.stop()
    if failure:  # already logged as an error by the pipeline
        return 3
    return 0
