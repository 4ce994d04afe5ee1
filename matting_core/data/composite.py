"""Foreground/background estimation (cached on disk) and compositing onto new backgrounds.

Why estimate the foreground: pasting ``alpha * photo`` onto a new background keeps the old background's colour
in every semi-transparent pixel (hair halo). Solving the matting equation for F (and B) with pymatting's
multi-level estimator removes it, and gives the F/B the composition loss needs. The authors pre-solve F/B once
per training image (PAPER-NOTES section 4); we do the same lazily and keep the results as PNGs in a cache
folder, keyed by the photo's path, size and modification time.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from matting_core.data.datasets import IMAGE_EXTS, DatasetError, read_image_rgb

log = logging.getLogger(__name__)

# pymatting's parallel numba code would otherwise pick the OpenMP threading layer, i.e. the libgomp that torch
# already started in the parent of a forked DataLoader worker: that thread pool does not survive fork() and
# the worker hangs inside estimate_foreground_ml. numba's own "workqueue" layer is fork-safe. It must be set
# before numba is first imported, hence here, at import, and only when the user has not chosen a layer.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


def estimate_fg_bg(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), alpha float (H, W)) -> (fg, bg) float32 (H, W, 3) in [0, 1] (pymatting ML)."""
    from pymatting import estimate_foreground_ml

    img = image.astype(np.float64) / 255.0
    fg, bg = estimate_foreground_ml(img, alpha.astype(np.float64), return_background=True)
    return np.clip(fg, 0, 1).astype(np.float32), np.clip(bg, 0, 1).astype(np.float32)


class ForegroundCache:
    """Disk cache of estimated F/B per photo: ``DIR/<key>_fg.png`` and ``DIR/<key>_bg.png`` (8-bit RGB).

    Safe with several data-loader workers: files are written under a temporary name and renamed.
    """

    def __init__(self, folder: Path | str | None) -> None:
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(image_path: Path, alpha_path: Path) -> str:
        parts = []
        for p in (image_path, alpha_path):
            st = p.stat()
            parts.append(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}")
        return hashlib.sha1("||".join(parts).encode()).hexdigest()[:20]

    def get(self, image_path: Path, alpha_path: Path, image: np.ndarray, alpha: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Cached (fg, bg) float32 in [0, 1], computing and storing them on a miss."""
        import cv2

        if self.folder is None:
            return estimate_fg_bg(image, alpha)
        k = self.key(image_path, alpha_path)
        paths = (self.folder / f"{k}_fg.png", self.folder / f"{k}_bg.png")
        if all(p.is_file() for p in paths):
            loaded = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
            if all(x is not None and x.shape[:2] == image.shape[:2] for x in loaded):
                return tuple(cv2.cvtColor(x, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0 for x in loaded)  # type: ignore[return-value]
            log.warning("fg cache entry %s is unreadable or stale: recomputing", k)
        fg, bg = estimate_fg_bg(image, alpha)
        for p, x in zip(paths, (fg, bg)):
            tmp = p.with_name(p.stem + f".{np.random.randint(1 << 30)}.tmp.png")
            cv2.imwrite(str(tmp), cv2.cvtColor(np.round(x * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
            tmp.replace(p)
        return fg, bg


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The matting equation: alpha * fg + (1 - alpha) * bg; float (H, W, 3), alpha (H, W)."""
    a = alpha[..., None].astype(np.float32)
    return a * fg + (1.0 - a) * bg


def list_backgrounds(folders: list[Path | str] | tuple[Path | str, ...]) -> list[Path]:
    """Every image file under the given folders (recursively), sorted; DatasetError when a folder is missing."""
    out: list[Path] = []
    for f in folders:
        f = Path(f)
        if not f.is_dir():
            raise DatasetError(f"background folder {f} does not exist")
        out.extend(p for p in sorted(f.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    return out


def random_background(paths: list[Path], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random background, random-cropped at a random scale to ``size`` (H, W), float32 RGB in [0, 1].

    Falls back to a smooth random gradient when there are no files (or a file cannot be read): still a
    plausible background, and training never stops on one bad file.
    """
    import cv2

    h, w = size
    if paths:
        p = paths[int(rng.integers(len(paths)))]
        try:
            img = read_image_rgb(p)
        except DatasetError as exc:
            log.warning("%s", exc)
        else:
            ih, iw = img.shape[:2]
            s = max(h / ih, w / iw) * rng.uniform(1.0, 1.6)  # cover the frame, then zoom a bit
            img = cv2.resize(img, (max(w, round(iw * s)), max(h, round(ih * s))), interpolation=cv2.INTER_LINEAR)
            y = int(rng.integers(img.shape[0] - h + 1))
            x = int(rng.integers(img.shape[1] - w + 1))
            return img[y : y + h, x : x + w].astype(np.float32) / 255.0
    return gradient_background(size, rng)


def gradient_background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A linear colour gradient plus low-frequency noise, float32 RGB (H, W, 3) in [0, 1]."""
    import cv2

    h, w = size
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1))
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    noise = cv2.resize(rng.normal(0, 0.08, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32), (w, h))
    return np.clip(img + noise, 0, 1).astype(np.float32)
