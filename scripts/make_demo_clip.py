"""Make the bundled demo clip: a slow pan and zoom over ``skimage.data.astronaut()``.

The photo is NASA's portrait of astronaut Eileen Collins (public domain; see assets/LICENSES.md). The clip lets
``mattecam`` show its main job on a machine without a camera. The motion (sub-pixel, eased) gives the matting and
the temporal smoothing a moving subject to work on.

    python scripts/make_demo_clip.py                   # writes assets/demo.mp4
    python scripts/make_demo_clip.py --seconds 2 --size 320x240 -o /tmp/demo.mp4
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def camera_path(t: float) -> tuple[float, float, float]:
    """Centre (x, y) in source pixels and zoom at time ``t`` in [0, 1]: ease in/out, then back (loops cleanly)."""
    s = 0.5 - 0.5 * math.cos(2 * math.pi * t)  # 0 -> 1 -> 0, smooth at both ends
    cx = 256 - 20 * s
    cy = 196 - 22 * s
    zoom = 1.0 + 0.22 * s
    return cx, cy, zoom


def render_frame(image_bgr: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """One output frame: an affine crop of the photo at sub-pixel precision (no integer-crop jitter)."""
    out_w, out_h = size
    src_h, src_w = image_bgr.shape[:2]
    cx, cy, zoom = camera_path(t)
    # The widest 4:3 (or whatever the output aspect) window that fits in the photo at zoom 1.
    base = min(src_w / out_w, src_h / out_h)
    scale = zoom / base  # output pixels per source pixel
    matrix = np.array([[scale, 0.0, out_w / 2 - scale * cx], [0.0, scale, out_h / 2 - scale * cy]], np.float32)
    return cv2.warpAffine(image_bgr, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "assets" / "demo.mp4")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--size", type=parse_size, default=(640, 480))
    args = parser.parse_args(argv)

    from skimage import data  # dev dependency; only this script needs it

    image_bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    n = max(1, round(args.seconds * args.fps))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, args.size)
    if not writer.isOpened():
        print(f"error: cannot write {args.out} with the mp4v codec", file=sys.stderr)
        return 1
    for i in range(n):
        writer.write(render_frame(image_bgr, i / n, args.size))
    writer.release()
    print(f"wrote {args.out} ({n} frames, {args.size[0]}x{args.size[1]} @ {args.fps:g} fps, "
          f"{args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
