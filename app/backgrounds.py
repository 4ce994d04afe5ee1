"""What goes behind the person: a picture, a blurred copy of the room, a solid colour, a video, or nothing.

Every background renders a BGR uint8 frame of the camera frame's size. Pictures and videos are scaled to *fill*
the frame (cover, centre-crop), never stretched. Loading checks the file up front and raises
``BackgroundError`` with a readable reason, so the caller can keep the previous background.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)


class BackgroundError(Exception):
    """A background that cannot be used (missing file, not a picture, ...)."""


class Background(Protocol):
    """Renders the background layer for one frame."""

    description: str

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Background for ``frame`` (H, W, 3 BGR uint8) whose person matte is ``alpha`` (H, W float32)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BackgroundSpec:
    """A background as the settings describe it; ``load_background`` turns it into pixels."""

    mode: str = "image"  # image | blur | color | video | none
    path: str = ""
    blur_strength: int = 50
    color: str = "#2e7d32"


def read_image(path: str | Path) -> np.ndarray:
    """A picture file as BGR uint8, or ``BackgroundError`` saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise BackgroundError(f"background picture not found: {path}")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths
    except OSError as exc:
        raise BackgroundError(f"cannot read background picture {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise BackgroundError(f"{path.name} is not a picture OpenCV can decode (corrupt or unsupported format)")
    if min(image.shape[:2]) < 2:
        raise BackgroundError(f"{path.name} is too small ({image.shape[1]}x{image.shape[0]})")
    return image


def aspect_fill(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to cover ``size`` = (width, height) keeping its aspect, then crop the centre."""
    out_w, out_h = size
    h, w = image.shape[:2]
    scale = max(out_w / w, out_h / h)
    new_w, new_h = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    x0, y0 = (new_w - out_w) // 2, (new_h - out_h) // 2
    return np.ascontiguousarray(resized[y0 : y0 + out_h, x0 : x0 + out_w])


def parse_color(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` -> (b, g, r)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", text or ""):
        raise BackgroundError(f"colour must look like #rrggbb, got {text!r}")
    r, g, b = (int(text[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r


class ImageBackground:
    """A still picture, scaled to fill; the scaled copy is cached per frame size."""

    def __init__(self, image: np.ndarray, description: str = "picture") -> None:
        self.image = image
        self.description = description
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> ImageBackground:
        return cls(read_image(path), description=Path(path).name)

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        size = (frame.shape[1], frame.shape[0])
        if self._cache is None or self._cache[0] != size:
            self._cache = (size, aspect_fill(self.image, size))
        return self._cache[1]

    def close(self) -> None:
        pass


class ColorBackground:
    def __init__(self, bgr: tuple[int, int, int], description: str = "colour") -> None:
        self.bgr = bgr
        self.description = description
        self._cache: np.ndarray | None = None

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        if self._cache is None or self._cache.shape != frame.shape:
            self._cache = np.empty_like(frame)
            self._cache[:] = self.bgr
        return self._cache

    def close(self) -> None:
        pass


class BlurBackground:
    """The room itself, blurred, with the person cut out of the blur.

    A plain Gaussian blur of the frame smears the person's colours into the background, which shows as a dark
    halo around the head. Here the blur is a normalised convolution of the frame weighted by (1 - alpha), so
    only background pixels contribute. It runs at a quarter of the size: the result is smooth anyway.
    """

    def __init__(self, strength: int) -> None:
        if not 0 <= strength <= 100:
            raise BackgroundError(f"blur strength must be in [0, 100], got {strength}")
        self.strength = strength
        self.description = f"blur {strength}"

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        if self.strength == 0:
            return frame
        h, w = frame.shape[:2]
        factor = 4 if min(h, w) >= 64 else 1
        small_size = (max(1, w // factor), max(1, h // factor))
        small = cv2.resize(frame, small_size, interpolation=cv2.INTER_AREA).astype(np.float32)
        weight = 1.0 - cv2.resize(alpha, small_size, interpolation=cv2.INTER_AREA)
        # sigma grows with strength and frame size: strength 100 ~ 4 % of the short side.
        sigma = max(0.5, self.strength / 100.0 * 0.04 * min(h, w) / factor)
        num = cv2.GaussianBlur(small * weight[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        plain = cv2.GaussianBlur(small, (0, 0), sigma)
        # Where nothing but the person is near (den ~ 0), fall back to the plain blur.
        mix = np.clip(den * 20.0, 0.0, 1.0)[..., None]
        blurred = mix * (num / np.maximum(den, 1e-4)[..., None]) + (1.0 - mix) * plain
        blurred = np.clip(blurred, 0, 255).astype(np.uint8)
        return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)

    def close(self) -> None:
        pass


class VideoBackground:
    """A looping video, played at its own frame rate whatever the processing rate, scaled to fill."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BackgroundError(f"background video not found: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise BackgroundError(f"{self.path.name} is not a video OpenCV can decode")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 25.0
        self.description = self.path.name
        self._frame = first
        self._index = 0
        self._start = time.monotonic()

    def _advance_to(self, target: int) -> None:
        if target < self._index:  # looped: only happens after a seek to the start
            return
        while self._index < target:
            ok = self._cap.grab()
            if not ok:  # end of file: loop
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._cap.read()
                if not ok:
                    return
                self._frame, self._index, self._start = frame, 0, time.monotonic()
                return
            self._index += 1
            if self._index == target:
                ok, frame = self._cap.retrieve()
                if ok:
                    self._frame = frame

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        self._advance_to(int((time.monotonic() - self._start) * self.fps))
        return aspect_fill(self._frame, (frame.shape[1], frame.shape[0]))

    def close(self) -> None:
        self._cap.release()


class PassthroughBackground:
    """No replacement: the camera frame as it is (useful to compare, and as a privacy-off switch)."""

    description = "none"

    def render(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        return frame

    def close(self) -> None:
        pass


def load_background(spec: BackgroundSpec) -> Background:
    """Build the background ``spec`` describes; ``BackgroundError`` if its file or value is unusable."""
    if spec.mode == "image":
        if not spec.path:
            raise BackgroundError("no background picture chosen")
        return ImageBackground.from_file(spec.path)
    if spec.mode == "blur":
        return BlurBackground(spec.blur_strength)
    if spec.mode == "color":
        return ColorBackground(parse_color(spec.color), description=spec.color)
    if spec.mode == "video":
        if not spec.path:
            raise BackgroundError("no background video chosen")
        return VideoBackground(spec.path)
    if spec.mode == "none":
        return PassthroughBackground()
    raise BackgroundError(f"unknown background mode {spec.mode!r}")
