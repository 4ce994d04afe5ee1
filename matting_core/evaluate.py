"""Score predicted mattes against ground truth and write the reports (table, JSON, markdown + pictures).

Two ways in: folders of predictions and ground truth matched by file stem (``score_folders``), or a model run
over a dataset (``predict_dataset`` then ``score_items``). Both end in an :class:`EvalReport`.
Benchmark protocol (PAPER-NOTES section 7): metrics at the original resolution (a prediction of another size is
resized to the GT first), plain mean over images; without trimaps, SAD-T uses trimaps generated from the GT
with a 30x30 elliptical kernel, as the PPM-100 benchmark does.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matting_core.data.datasets import (
    DatasetError,
    Sample,
    images_by_stem,
    read_alpha,
    read_image_rgb,
    read_trimap,
)
from matting_core.metrics import HIGHER_IS_BETTER, METRIC_NAMES, benchmark_trimap, evaluate_pair, mean_metrics

log = logging.getLogger(__name__)

#: Kernel of the trimaps generated from GT when none are given (PPM-100 benchmark protocol).
GENERATED_TRIMAP_KERNEL = 30


@dataclass(frozen=True)
class EvalItem:
    """One image to score: prediction, ground truth, optional trimap and (for pictures) the photo."""

    name: str
    pred: Path
    gt: Path
    trimap: Path | None = None
    image: Path | None = None


@dataclass
class ImageScore:
    name: str
    metrics: dict[str, float]
    item: EvalItem


@dataclass
class EvalReport:
    """Per-image scores, their means, and notes about the protocol (generated trimaps, resizing, skips)."""

    scores: list[ImageScore]
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float]:
        return mean_metrics([s.metrics for s in self.scores])

    def to_dict(self) -> dict:
        return {
            "count": len(self.scores),
            "mean": self.mean,
            "notes": self.notes,
            "images": [{"name": s.name, **s.metrics} for s in self.scores],
        }

    def worst(self, n: int, metric: str = "SAD") -> list[ImageScore]:
        return sorted(self.scores, key=lambda s: s.metrics.get(metric, 0.0), reverse=metric not in HIGHER_IS_BETTER)[:n]


def match_folders(
    pred_dir: Path, gt_dir: Path, trimap_dir: Path | None = None, image_dir: Path | None = None
) -> tuple[list[EvalItem], list[str]]:
    """Pair predictions with GT (and trimaps / photos) by file stem; report every unmatched file by name."""
    for d in (pred_dir, gt_dir, trimap_dir, image_dir):
        if d is not None and not Path(d).is_dir():
            raise DatasetError(f"missing folder {d}")
    problems: list[str] = []
    preds = images_by_stem(Path(pred_dir), problems)
    gts = images_by_stem(Path(gt_dir), problems)
    trimaps = images_by_stem(Path(trimap_dir), problems) if trimap_dir else {}
    images = images_by_stem(Path(image_dir), problems) if image_dir else {}
    items = []
    for stem, gt in gts.items():
        if stem not in preds:
            problems.append(f"ground truth without prediction: {gt}")
            continue
        if trimap_dir and stem not in trimaps:
            problems.append(f"ground truth without trimap: {gt}")
            continue
        items.append(EvalItem(stem, preds[stem], gt, trimaps.get(stem), images.get(stem)))
    problems.extend(f"prediction without ground truth: {p}" for s, p in preds.items() if s not in gts)
    return items, problems


def _resize_to(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    return cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def score_items(items: Sequence[EvalItem], progress: bool = False) -> EvalReport:
    """Score every item; unreadable files are skipped and named in the report's notes."""
    from tqdm import tqdm

    report = EvalReport(scores=[])
    generated = resized = 0
    for item in tqdm(items, desc="scoring", unit="img", disable=not progress):
        try:
            gt = read_alpha(item.gt)
            pred = read_alpha(item.pred)
            trimap = read_trimap(item.trimap) if item.trimap else None
        except DatasetError as exc:
            report.notes.append(f"skipped {item.name}: {exc}")
            continue
        if pred.shape != gt.shape:
            pred = np.clip(_resize_to(pred, gt.shape), 0.0, 1.0)
            resized += 1
        if trimap is None:
            trimap = benchmark_trimap(gt, GENERATED_TRIMAP_KERNEL)
            generated += 1
        elif trimap.shape != gt.shape:
            report.notes.append(f"skipped {item.name}: trimap {trimap.shape} and GT {gt.shape} differ in size")
            continue
        report.scores.append(ImageScore(item.name, evaluate_pair(pred, gt, trimap), item))
    if generated:
        report.notes.append(
            f"SAD-T of {generated} image(s) uses trimaps generated from the GT "
            f"({GENERATED_TRIMAP_KERNEL}x{GENERATED_TRIMAP_KERNEL} elliptical kernel, PPM-100 protocol)"
        )
    if resized:
        report.notes.append(f"{resized} prediction(s) resized (bilinear) to the GT size before scoring")
    return report


def score_folders(pred_dir: Path, gt_dir: Path, trimap_dir: Path | None = None,
                  image_dir: Path | None = None, progress: bool = False) -> EvalReport:
    """Match folders by stem and score; DatasetError when nothing matches. Unmatched files go to the notes."""
    items, problems = match_folders(pred_dir, gt_dir, trimap_dir, image_dir)
    if not items:
        raise DatasetError(f"no prediction in {pred_dir} matches a ground truth in {gt_dir} by file name")
    report = score_items(items, progress)
    report.notes = [*problems, *report.notes]
    return report


def fit_max_pixels(h: int, w: int, max_pixels: int | None) -> tuple[int, int]:
    """(h, w) scaled down (aspect kept) so h * w <= max_pixels; unchanged when it already fits or no limit."""
    if not max_pixels or h * w <= max_pixels:
        return h, w
    s = (max_pixels / (h * w)) ** 0.5
    return max(1, int(h * s)), max(1, int(w * s))


def predict_dataset(
    matte: Callable[[np.ndarray], np.ndarray],
    samples: Sequence[Sample],
    out_dir: Path,
    max_pixels: int | None = None,
    progress: bool = True,
) -> tuple[list[EvalItem], list[str]]:
    """Run ``matte`` (RGB uint8 -> alpha float HxW) on each sample's photo, write ``out_dir/NAME.png``.

    With ``max_pixels`` the photo is downscaled for the model and the alpha upscaled back (the PPM-100 protocol
    caps the area at HD, 2,073,600 px). Returns the items to score and the names of unreadable files.
    """
    import cv2
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    problems: list[str] = []
    for s in tqdm(samples, desc="matting", unit="img", disable=not progress):
        try:
            rgb = read_image_rgb(s.image)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        h, w = rgb.shape[:2]
        th, tw = fit_max_pixels(h, w, max_pixels)
        small = rgb if (th, tw) == (h, w) else cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
        alpha = np.clip(matte(small), 0.0, 1.0)
        if alpha.shape != (h, w):
            alpha = np.clip(_resize_to(alpha.astype(np.float32), (h, w)), 0.0, 1.0)
        name = s.name.replace("/", "__")
        path = out_dir / f"{name}.png"
        cv2.imwrite(str(path), np.round(alpha * 255).astype(np.uint8))
        items.append(EvalItem(s.name, path, s.alpha, s.trimap, s.image))
    return items, problems


# ------------------------------------------------------------------------------------------------ output
def format_table(report: EvalReport, title: str = "") -> str:
    """Terminal table of the mean metrics."""
    mean = report.mean
    names = [n for n in METRIC_NAMES if n in mean]
    head = f"{'images':>8} " + " ".join(f"{n:>10}" for n in names)
    row = f"{len(report.scores):>8} " + " ".join(f"{mean[n]:>10.4f}" for n in names)
    lines = ([title] if title else []) + [head, row]
    return "\n".join(lines)


def write_json(report: EvalReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2))


def plot_distributions(report: EvalReport, path: Path) -> None:
    """Histogram of each per-image metric (which images dominate a mean is visible at a glance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("SAD", "SAD-T", "Grad", "Conn", "MSE", "IoU") if n in report.mean]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for ax, n in zip(axes[0], names):
        vals = [s.metrics[n] for s in report.scores]
        ax.hist(vals, bins=min(30, max(5, len(vals) // 2)), color="#4477aa")
        ax.axvline(float(np.mean(vals)), color="#cc3311", linestyle="--", label="mean")
        ax.set_title(n)
        ax.set_xlabel("per image")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _thumb(a: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = a.shape[:2]
    return cv2.resize(a, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _grey_rgb(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor((np.clip(a, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def worst_cases_grid(report: EvalReport, path: Path, n: int = 6, metric: str = "SAD", height: int = 192) -> int:
    """PNG grid, one row per worst image: image | truth | prediction | |error| (image column when known).

    Returns the number of rows drawn.
    """
    import cv2

    rows = []
    for s in report.worst(n, metric):
        try:
            gt = read_alpha(s.item.gt)
            pred = read_alpha(s.item.pred)
        except DatasetError:
            continue
        if pred.shape != gt.shape:
            pred = _resize_to(pred, gt.shape)
        err = np.abs(pred - gt)
        heat = cv2.applyColorMap((err * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        tiles = []
        if s.item.image is not None:
            with contextlib.suppress(DatasetError):  # the picture is still useful without the photo
                tiles.append(read_image_rgb(s.item.image))
        tiles += [_grey_rgb(gt), _grey_rgb(pred), heat]
        row = np.concatenate([_thumb(t, height) for t in tiles if t.shape[:2] == gt.shape[:2]], axis=1)
        label = f"{s.name}  {metric}={s.metrics.get(metric, float('nan')):.3f}"
        cv2.putText(row, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    if not rows:
        return 0
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return len(rows)


def write_markdown(report: EvalReport, out_dir: Path, title: str = "Matting evaluation", worst: int = 6) -> Path:
    """``out_dir/report.md`` with the mean table, notes, the metric histograms and the worst-cases grid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean = report.mean
    names = [n for n in METRIC_NAMES if n in mean]
    lines = [f"# {title}", "", (f"{len(report.scores)} images. SAD, SAD-T and Conn are / 1000, Grad / 10 (P3M "
             "benchmark scaling); MSE and MAD are per-pixel means; IoU of alpha >= 0.5."), ""]
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(f"{mean[n]:.4f}" for n in names) + " |", ""]
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes[:50]], ""]
    plot_distributions(report, out_dir / "metrics.png")
    lines += ["## Per-image distributions", "", "![metric histograms](metrics.png)", ""]
    drawn = worst_cases_grid(report, out_dir / "worst.png", worst)
    if drawn:
        lines += [f"## {drawn} worst images by SAD", "", ("Columns: image (when known) | truth | prediction | "
                  "absolute error."), "", "![worst cases](worst.png)", ""]
        lines += ["| image | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {s.name} | " + " | ".join(f"{s.metrics.get(n, float('nan')):.4f}" for n in names) + " |"
                  for s in report.worst(drawn)]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
