"""Readers for matting datasets on disk: P3M-10k, PPM-100 and generic image/alpha folder pairs.

A reader only *finds* pairs (image, alpha[, trimap]) by file stem and reports what it could not pair, by name;
decoding happens later (``load_sample``), in data-loader workers. Layouts:

- generic:  ROOT/image/*.jpg + ROOT/alpha/*.png (also ``matte/`` or ``mask/``), or one level of sub-folders
            each laid out like that (e.g. people2-rvm/{ccp,facemask_cd,...}); the sub-folder is the sample's group.
- P3M-10k:  ROOT/train/{blurred_image,mask}; ROOT/validation/P3M-500-P/{blurred_image,mask,trimap};
            ROOT/validation/P3M-500-NP/{original_image,mask,trimap}.
- PPM-100:  ROOT/{image,matte}.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ALPHA_DIR_NAMES = ("alpha", "matte", "mask")
P3M_SPLITS = ("train", "P3M-500-P", "P3M-500-NP")
Layout = Literal["auto", "generic", "p3m", "ppm100"]


class DatasetError(ValueError):
    """A dataset folder that cannot be used (wrong layout, no usable pairs, unreadable file)."""


@dataclass(frozen=True)
class Sample:
    """One image with its alpha matte (and trimap, for benchmark test sets). ``group`` = source sub-folder."""

    image: Path
    alpha: Path
    trimap: Path | None = None
    group: str = ""

    @property
    def name(self) -> str:
        """Unique-ish display name: ``group/stem``."""
        return f"{self.group}/{self.image.stem}" if self.group else self.image.stem


@dataclass
class Scan:
    """The pairs a reader found plus one line per file it had to leave out."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def extend(self, other: Scan) -> None:
        self.samples.extend(other.samples)
        self.problems.extend(other.problems)

    def require_samples(self, root: Path | str) -> Scan:
        """Raise DatasetError naming ``root`` (and the first problems) when no usable pair was found."""
        if not self.samples:
            detail = "; ".join(self.problems[:5]) or "no image files found"
            raise DatasetError(f"no usable image/alpha pairs in {root}: {detail}")
        return self


def images_by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        if p.stem in found:
            problems.append(f"duplicate stem, ignored: {p} (kept {found[p.stem].name})")
            continue
        found[p.stem] = p
    return found


def scan_pair(image_dir: Path, alpha_dir: Path, trimap_dir: Path | None = None, group: str = "") -> Scan:
    """Pair files of ``image_dir`` and ``alpha_dir`` (and ``trimap_dir``) by stem; report the unmatched."""
    for d in (image_dir, alpha_dir, *([trimap_dir] if trimap_dir else [])):
        if not d.is_dir():
            raise DatasetError(f"missing folder {d}")
    scan = Scan()
    images = images_by_stem(image_dir, scan.problems)
    alphas = images_by_stem(alpha_dir, scan.problems)
    trimaps = images_by_stem(trimap_dir, scan.problems) if trimap_dir else {}
    for stem, img in images.items():
        if stem not in alphas:
            scan.problems.append(f"image without alpha: {img}")
            continue
        if trimap_dir and stem not in trimaps:
            scan.problems.append(f"image without trimap: {img}")
            continue
        scan.samples.append(Sample(img, alphas[stem], trimaps.get(stem), group))
    scan.problems.extend(f"alpha without image: {a}" for s, a in alphas.items() if s not in images)
    return scan


def _alpha_dir(folder: Path) -> Path | None:
    return next((folder / n for n in ALPHA_DIR_NAMES if (folder / n).is_dir()), None)


def scan_generic(root: Path) -> Scan:
    """``root/image`` + ``root/alpha|matte|mask``, or sub-folders laid out like that (one group each)."""
    alpha = _alpha_dir(root)
    if (root / "image").is_dir() and alpha is not None:
        trimap = root / "trimap" if (root / "trimap").is_dir() else None
        return scan_pair(root / "image", alpha, trimap)
    scan = Scan()
    subs = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "image").is_dir() and _alpha_dir(d)]
    if not subs:
        raise DatasetError(
            f"{root} is not a dataset folder: expected image/ + one of {'/, '.join(ALPHA_DIR_NAMES)}/ "
            "(or sub-folders laid out like that, or the P3M-10k / PPM-100 layouts)"
        )
    for d in subs:
        scan.extend(scan_pair(d / "image", _alpha_dir(d), group=d.name))  # type: ignore[arg-type]
    return scan


def _p3m_base(root: Path) -> Path:
    """Accept the P3M-10k root or its parent-less split folders' parent."""
    if (root / "train").is_dir() or (root / "validation").is_dir():
        return root
    if (root / "P3M-10k").is_dir():
        return root / "P3M-10k"
    raise DatasetError(f"{root} does not look like P3M-10k (no train/ or validation/ folder)")


def scan_p3m(root: Path, split: str = "train") -> Scan:
    """P3M-10k: ``split`` = train (blurred faces), P3M-500-P (blurred faces) or P3M-500-NP (original faces)."""
    if split not in P3M_SPLITS:
        raise DatasetError(f"unknown P3M split {split!r}; choose one of {', '.join(P3M_SPLITS)}")
    base = _p3m_base(root)
    if split == "train":
        return scan_pair(base / "train" / "blurred_image", base / "train" / "mask", group="train")
    folder = base / "validation" / split
    image_dir = folder / ("blurred_image" if split == "P3M-500-P" else "original_image")
    return scan_pair(image_dir, folder / "mask", folder / "trimap", group=split)


def scan_ppm100(root: Path) -> Scan:
    """PPM-100: ``root/image`` + ``root/matte``."""
    return scan_pair(root / "image", root / "matte", group="")


def detect_layout(root: Path) -> Layout:
    """Guess the layout of ``root`` from its folder names."""
    if (root / "train" / "blurred_image").is_dir() or (root / "validation" / "P3M-500-P").is_dir():
        return "p3m"
    if (root / "image").is_dir() and (root / "matte").is_dir() and not (root / "alpha").is_dir():
        return "ppm100"
    return "generic"


def scan_dataset(root: Path | str, layout: Layout = "auto", split: str | None = None) -> Scan:
    """Find every usable pair under ``root``; raises DatasetError when there is none.

    ``split`` picks a P3M-10k subset (default train); other layouts have no split.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    kind = detect_layout(root) if layout == "auto" else layout
    if kind == "p3m":
        scan = scan_p3m(root, split or "train")
    elif split is not None:
        raise DatasetError(f"split {split!r} only applies to P3M-10k, but {root} has the {kind} layout")
    elif kind == "ppm100":
        scan = scan_ppm100(root)
    elif kind == "generic":
        scan = scan_generic(root)
    else:
        raise DatasetError(f"unknown dataset layout {layout!r}")
    for p in scan.problems:
        log.warning("%s", p)
    return scan.require_samples(root)


def check_readable(samples: Iterable[Sample]) -> Scan:
    """Keep the samples whose files OpenCV recognises (file signature check, no full decode)."""
    import cv2

    scan = Scan()
    for s in samples:
        bad = [p for p in (s.image, s.alpha, s.trimap) if p is not None and not cv2.haveImageReader(str(p))]
        if bad:
            scan.problems.extend(f"unreadable file: {p}" for p in bad)
        else:
            scan.samples.append(s)
    return scan


def _stable_fraction(text: str) -> float:
    """A deterministic number in [0, 1) from ``text`` (same on every machine and Python run)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def split_samples(
    samples: Sequence[Sample], val_fraction: float = 0.1, val_groups: Sequence[str] = ()
) -> tuple[list[Sample], list[Sample]]:
    """Deterministic train/validation split.

    With ``val_groups``, whole source sub-folders are held out (no near-duplicates across the split);
    otherwise each sample goes to validation when the hash of ``group/stem`` falls below ``val_fraction``,
    so adding files never moves existing ones between the splits.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_groups:
        groups = {s.group for s in samples}
        missing = sorted(set(val_groups) - groups)
        if missing:
            raise DatasetError(f"validation groups {missing} not found; groups present: {sorted(groups)}")
        val = [s for s in samples if s.group in val_groups]
    else:
        val = [s for s in samples if _stable_fraction(s.name) < val_fraction]
    val_set = set(val)
    return [s for s in samples if s not in val_set], val


def read_image_rgb(path: Path | str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; DatasetError naming the file when it cannot be decoded."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_alpha(path: Path | str) -> np.ndarray:
    """(H, W) float32 alpha in [0, 1] from an 8/16-bit grey (or colour: first channel) image."""
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise DatasetError(f"cannot read alpha matte {path}")
    if a.ndim == 3:
        a = a[..., 3] if a.shape[2] == 4 else a[..., 0]
    scale = 65535.0 if a.dtype == np.uint16 else 255.0
    return a.astype(np.float32) / scale


def read_trimap(path: Path | str) -> np.ndarray:
    """(H, W) uint8 benchmark trimap 0/128/255."""
    import cv2

    t = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if t is None:
        raise DatasetError(f"cannot read trimap {path}")
    return t


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), alpha float32 (H, W)); an alpha of another size is resized to the image."""
    import cv2

    image = read_image_rgb(sample.image)
    alpha = read_alpha(sample.alpha)
    if alpha.shape != image.shape[:2]:
        log.debug("resizing alpha %s %s to image size %s", sample.alpha, alpha.shape, image.shape[:2])
        alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return image, alpha
