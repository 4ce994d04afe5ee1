"""Distillation data: label a folder of photos with a teacher ONNX matting model.

The output folder is laid out for the generic reader (``OUT/alpha/<stem>.png`` beside ``OUT/image``), so
``mattecam train`` can use it directly (data.root = OUT). Teachers:

- Robust Video Matting (inputs ``src`` [1, H, W, 3] RGB in [0, 1] NHWC, ``downsample_ratio:0``, recurrent
  ``r1i:0..r4i:0``; output ``pha``): run via ``backends.peer.RvmPeer``; a still photo is run ``passes`` times
  (default 2) feeding the recurrent state back, so the second pass sees a "video" that has settled.
- Any other single-input model: NCHW or NHWC float input in [0, 1] (fixed sizes are resized to), output a
  1-channel alpha (or 2-channel background/person logits -> softmax).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matting_core.data.datasets import DatasetError, images_by_stem, read_image_rgb

log = logging.getLogger(__name__)

Teacher = Callable[[np.ndarray], np.ndarray]  # RGB uint8 (H, W, 3) -> alpha float32 (H, W) in [0, 1]


def _is_rvm(names: list[str]) -> bool:
    return "src" in names and any(n.startswith("r1i") for n in names)


class GenericOnnxTeacher:
    """A single-input ONNX segmentation/matting model with its layout read from the graph."""

    def __init__(self, session) -> None:  # noqa: ANN001 - an OrtSession
        inputs = session.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{session.path}: teacher has {len(inputs)} inputs {[i.name for i in inputs]}; only RVM "
                             "or single-input models are supported")
        self.ort = session
        self.name = inputs[0].name
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise ValueError(f"{session.path}: input {self.name} has shape {shape}, expected 4-D")
        self.nchw = shape[1] == 3
        hw = shape[2:4] if self.nchw else shape[1:3]
        self.fixed = tuple(hw) if all(isinstance(d, int) and d > 0 for d in hw) else None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        x = rgb if self.fixed is None else cv2.resize(rgb, (self.fixed[1], self.fixed[0]), interpolation=cv2.INTER_AREA)
        x = x.astype(np.float32) / 255.0
        x = x.transpose(2, 0, 1)[None] if self.nchw else x[None]
        y = np.asarray(self.ort.run({self.name: np.ascontiguousarray(x)})[0], np.float32)
        y = y[0]
        if y.ndim == 3:  # channels first or last
            y = y if y.shape[0] in (1, 2) else y.transpose(2, 0, 1)
            if y.shape[0] == 2:  # background/person logits
                e = np.exp(y - y.max(axis=0, keepdims=True))
                y = e[1] / e.sum(axis=0)
            else:
                y = y[0]
        alpha = np.clip(y, 0.0, 1.0).astype(np.float32)
        if alpha.shape != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return alpha


def load_teacher(path: Path | str, providers: str = "auto", threads: int | None = None, passes: int = 2,
                 downsample_ratio: float | None = None) -> Teacher:
    """A callable teacher for the ONNX file at ``path`` (RVM detected by its input names)."""
    from matting_core.backends.ort_session import OrtOptions, create_session

    options = OrtOptions(providers=providers, threads=threads)  # type: ignore[arg-type]
    session = create_session(path, options)
    if _is_rvm(session.input_names):
        from matting_core.backends.peer import RvmPeer

        peer = RvmPeer(path, options, downsample_ratio)
        if passes < 1:
            raise ValueError("passes must be >= 1")

        def rvm(rgb: np.ndarray) -> np.ndarray:
            peer.reset()  # every photo is its own clip
            for _ in range(passes):
                alpha = peer(rgb).alpha
            return np.clip(alpha, 0.0, 1.0).astype(np.float32)

        return rvm
    return GenericOnnxTeacher(session)


@dataclass
class LabelReport:
    written: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def label_folder(teacher: Teacher, images: Path, out: Path, overwrite: bool = False, progress: bool = True,
                 link_images: bool = True) -> LabelReport:
    """Write ``out/alpha/<stem>.png`` for every image in ``images``; unreadable files are skipped and named.

    Existing alpha files are kept unless ``overwrite`` (so an interrupted run continues where it stopped).
    With ``link_images``, ``out/image`` becomes a symlink to ``images`` when it does not exist yet.
    """
    import cv2
    from tqdm import tqdm

    if not images.is_dir():
        raise DatasetError(f"image folder {images} does not exist")
    report = LabelReport()
    found = images_by_stem(images, report.problems)
    if not found:
        raise DatasetError(f"no image files in {images}")
    alpha_dir = out / "alpha"
    alpha_dir.mkdir(parents=True, exist_ok=True)
    image_link = out / "image"
    if link_images and not image_link.exists() and image_link.resolve() != images.resolve():
        image_link.symlink_to(images.resolve(), target_is_directory=True)
    for stem, path in tqdm(sorted(found.items()), desc="labelling", unit="img", disable=not progress):
        target = alpha_dir / f"{stem}.png"
        if target.exists() and not overwrite:
            report.skipped_existing.append(stem)
            continue
        try:
            rgb = read_image_rgb(path)
        except DatasetError:
            report.unreadable.append(str(path))
            log.warning("unreadable image skipped: %s", path)
            continue
        alpha = teacher(rgb)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"teacher returned {alpha.shape} for a {rgb.shape[:2]} image ({path})")
        tmp = target.with_name(target.stem + ".tmp.png")
        cv2.imwrite(str(tmp), np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8))
        tmp.replace(target)
        report.written.append(stem)
    return report
