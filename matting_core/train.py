"""The trainer: ``mattecam train CONFIG`` on CPU, one GPU, or N GPUs via ``torchrun`` (same command).

Run folder (``run_dir``) layout, everything needed to resume or inspect a run:
    config.json                the resolved TrainConfig
    checkpoints/step_XXXXXXXX.safetensors (+ .json)   weights every ``checkpoint.every`` steps (safetensors)
    final.safetensors          the weights at the end of training
    state.pt                   optimizer + step + RNG (tensors/primitives only; loaded with weights_only=True)
    log.csv                    one row every ``log.every`` steps: step, lr, img/s, every loss term
    val.csv, val/step_X.json, val/step_X.png   validation metrics and picture grids

Resume is automatic: when ``state.pt`` exists the run continues from its step (``--fresh`` starts over).
Ctrl-C saves a checkpoint and the state, then exits. A crash loses at most ``checkpoint.every`` steps.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from matting_core.config import ModelConfig, dataclass_from_dict
from matting_core.data.augment import AugmentConfig
from matting_core.data.batch import TrainBatch
from matting_core.losses import LossWeights, matting_loss

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
FINAL_FILE = "final.safetensors"


class TrainConfigError(ValueError):
    """A training configuration file that cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class DataConfig:
    """Where training batches come from.

    kind: "folders" (dataset readers + compositing/augmentation in CPU workers), "synthetic" (procedural
        composites, for smoke tests), "packed" (``matting_core.data.packed.PackedCompositeStream`` on the GPU).
    root: dataset folder (folders: generic / P3M-10k / PPM-100 layout; packed: the pack folder).
    layout, split: reader layout ("auto") and P3M-10k subset ("train").
    val_fraction / val_groups: hold out part of ``root`` for validation when [val] names no root of its own
        (hash of the name, or whole source sub-folders).
    backgrounds: folders of background pictures for compositing; fg_cache: folder for estimated fg/bg.
    batch_size: per process; workers: DataLoader worker processes per process.
    synthetic_length: distinct synthetic samples per "epoch"; synthetic_fixed: the same samples every epoch
        (a tiny set the model can overfit: a smoke test whose loss must fall).
    """

    kind: Literal["folders", "synthetic", "packed"] = "folders"
    root: str | None = None
    layout: Literal["auto", "generic", "p3m", "ppm100"] = "auto"
    split: str | None = None
    val_fraction: float = 0.0
    val_groups: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    fg_cache: str | None = None
    batch_size: int = 8
    workers: int = 4
    synthetic_length: int = 1024
    synthetic_fixed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("folders", "synthetic", "packed"):
            raise ValueError(f"kind must be folders, synthetic or packed, got {self.kind!r}")
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError("batch_size must be >= 1 and workers >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """Adam, lr 1e-4, x0.1 at the milestones (authors: 120k/240k of 400k steps, PAPER-NOTES section 5).

    weight_decay 2e-6 on parameters named "*weight*" equals the authors' explicit 1e-6 * sum ||W||^2 term.
    amp: bf16 autocast on CUDA (ignored on CPU). grad_clip: max gradient norm, 0 = off.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 2e-6
    milestones: tuple[int, ...] = (120_000, 240_000)
    gamma: float = 0.1
    steps: int = 400_000
    amp: bool = True
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.steps < 1:
            raise ValueError("lr must be > 0 and steps >= 1")

    def lr_at(self, step: int) -> float:
        return self.lr * self.gamma ** sum(step >= m for m in self.milestones)


@dataclass(frozen=True)
class CheckpointConfig:
    """every: steps between checkpoints (and resumable states); keep: step checkpoints kept (0 = all)."""

    every: int = 5000
    keep: int = 3

    def __post_init__(self) -> None:
        if self.every < 1 or self.keep < 0:
            raise ValueError("checkpoint.every must be >= 1 and keep >= 0")


@dataclass(frozen=True)
class ValConfig:
    """Validation: every N steps (0 = only at the end) on up to ``max_images`` images.

    root/split/layout: a separate validation dataset (e.g. P3M-10k split "P3M-500-P"); otherwise the held-out
    part of data.root, or fixed synthetic samples. Images larger than ``max_pixels`` are downscaled (metrics at
    that scale). grid: rows in the picture grid.
    """

    every: int = 2000
    root: str | None = None
    split: str | None = None
    layout: Literal["auto", "generic", "p3m", "ppm100"] = "auto"
    max_images: int = 50
    max_pixels: int = 896 * 896
    grid: int = 6


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; loaded from JSON or TOML (``load_train_config``)."""

    run_dir: str = "runs/train"
    seed: int = 100
    device: str = "auto"
    init: str | None = None  # optional .safetensors to start from (fine-tuning, distilled student)
    log_every: int = 10
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    val: ValConfig = field(default_factory=ValConfig)

    _SECTIONS = {
        "model": ModelConfig, "data": DataConfig, "augment": AugmentConfig, "optim": OptimConfig,
        "loss": LossWeights, "checkpoint": CheckpointConfig, "val": ValConfig,
    }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        top = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - top)
        if unknown:
            raise TrainConfigError(f"unknown top-level setting(s) {unknown}; known: {sorted(top)}")
        values: dict[str, Any] = {}
        for k, v in d.items():
            sec = cls._SECTIONS.get(k)
            values[k] = dataclass_from_dict(sec, v, f"[{k}]", TrainConfigError) if sec else v
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise TrainConfigError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        return {f.name: asdict(getattr(self, f.name)) if f.name in self._SECTIONS else getattr(self, f.name)
                for f in fields(self)}


def load_train_config(path: Path | str) -> TrainConfig:
    """Read a ``.toml`` or ``.json`` training config; TrainConfigError with the file name on any problem."""
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"config file {path} not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise TrainConfigError(f"{path}: config must be .toml or .json")
    except (ValueError, json.JSONDecodeError) as exc:
        raise TrainConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    try:
        return TrainConfig.from_dict(data)
    except TrainConfigError as exc:
        raise TrainConfigError(f"{path}: {exc}") from exc


# ----------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistEnv:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_train_device(requested: str, dist: DistEnv) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", dist.local_rank) if dist.world > 1 or requested == "cuda" else torch.device(requested)
    return torch.device(requested)


# ----------------------------------------------------------------------------------------------- data
def _folder_samples(cfg: TrainConfig) -> tuple[list, list]:
    from matting_core.data.datasets import scan_dataset, split_samples

    samples = scan_dataset(cfg.data.root, cfg.data.layout, cfg.data.split).samples  # type: ignore[arg-type]
    if cfg.val.root or (cfg.data.val_fraction == 0 and not cfg.data.val_groups):
        return samples, []
    return split_samples(samples, cfg.data.val_fraction, cfg.data.val_groups)


def train_stream(cfg: TrainConfig, train_samples: list, dist: DistEnv, device: torch.device,
                 start_step: int) -> Iterator[TrainBatch]:
    """Endless iterator of batches on ``device`` for this process."""
    if cfg.data.kind == "packed":
        try:
            from matting_core.data.packed import PackedCompositeStream
        except ImportError as exc:
            raise TrainConfigError(f"data.kind = 'packed' needs matting_core.data.packed ({exc})") from exc
        stream = PackedCompositeStream(cfg.data.root, cfg.augment.size, cfg.data.batch_size, device,
                                       cfg.seed + start_step, rank=dist.rank)
        yield from stream
        return
    from torch.utils.data import DataLoader, DistributedSampler

    from matting_core.data.loaders import FolderCompositeDataset, SyntheticDataset

    if cfg.data.kind == "synthetic":
        dataset = SyntheticDataset(cfg.augment.size, cfg.data.synthetic_length, cfg.seed,
                                   fixed=cfg.data.synthetic_fixed, trimap_kernel=cfg.augment.trimap_kernel)
    else:
        from matting_core.data.composite import list_backgrounds

        dataset = FolderCompositeDataset(train_samples, cfg.augment, list_backgrounds(list(cfg.data.backgrounds)),
                                         cfg.data.fg_cache)
    if len(dataset) < cfg.data.batch_size * dist.world:
        raise TrainConfigError(f"only {len(dataset)} training samples for batch {cfg.data.batch_size} x "
                               f"{dist.world} process(es)")
    sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    workers = cfg.data.workers
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, sampler=sampler, num_workers=workers,
                        collate_fn=TrainBatch.collate, pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=workers > 0)
    per_epoch = max(1, len(loader))
    epoch = start_step // per_epoch
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            yield batch.to(device, non_blocking=True)
        epoch += 1


@dataclass
class ValItem:
    name: str
    image: np.ndarray  # RGB uint8 (H, W, 3)
    alpha: np.ndarray  # float32 (H, W)
    trimap: np.ndarray | None  # 0/128/255 or None (generated from GT)


def validation_items(cfg: TrainConfig, held_out: list) -> list[ValItem]:
    """The fixed validation images, downscaled to at most ``val.max_pixels``."""
    import cv2

    from matting_core.data.datasets import load_sample, read_trimap, scan_dataset
    from matting_core.data.synthetic import synthetic_sample
    from matting_core.evaluate import fit_max_pixels

    n = cfg.val.max_images
    if cfg.val.root:
        samples = scan_dataset(cfg.val.root, cfg.val.layout, cfg.val.split).samples
    elif held_out:
        samples = held_out
    elif cfg.data.kind == "synthetic":
        out = []
        for i in range(n):
            s = synthetic_sample(cfg.augment.size, cfg.seed + 7919, i, cfg.augment.trimap_kernel)
            out.append(ValItem(f"synthetic_{i}", np.round(s["image"] * 255).astype(np.uint8), s["alpha"], None))
        return out
    else:
        return []
    items = []
    for s in samples[:n]:
        try:
            image, alpha = load_sample(s)
            trimap = read_trimap(s.trimap) if s.trimap else None
        except ValueError as exc:
            log.warning("validation: %s", exc)
            continue
        h, w = alpha.shape
        th, tw = fit_max_pixels(h, w, cfg.val.max_pixels)
        if (th, tw) != (h, w):
            image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, (tw, th), interpolation=cv2.INTER_AREA)
            if trimap is not None:
                trimap = cv2.resize(trimap, (tw, th), interpolation=cv2.INTER_NEAREST)
        items.append(ValItem(s.name, image, alpha, trimap))
    return items


# ----------------------------------------------------------------------------------------------- state
def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_state(run_dir: Path, step: int, checkpoint: str, optimizer: torch.optim.Optimizer,
               device: torch.device) -> None:
    """Resumable state: tensors and primitives only, so it loads with ``weights_only=True``."""
    state = {
        "step": step,
        "checkpoint": checkpoint,
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
    }
    _atomic_torch_save(state, run_dir / STATE_FILE)


def load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise TrainConfigError(f"{path}: cannot read the training state ({exc}); use --fresh to start over") from exc


@dataclass
class TrainResult:
    step: int
    interrupted: bool = False
    final_checkpoint: Path | None = None
    losses: list[float] = field(default_factory=list)
    val_metrics: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run (one process of it under torchrun). ``fit()`` runs to ``optim.steps``."""

    def __init__(self, cfg: TrainConfig, *, fresh: bool = False, progress: bool = True) -> None:
        from matting_core.model import PortraitMattingModel

        if cfg.data.kind in ("folders", "packed") and not cfg.data.root:
            raise TrainConfigError(f"data.kind = {cfg.data.kind!r} needs data.root (the dataset folder)")
        self.cfg = cfg
        self.dist = DistEnv.from_env()
        self.device = resolve_train_device(cfg.device, self.dist)
        if self.dist.world > 1:
            import torch.distributed as tdist

            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            tdist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.run_dir = Path(cfg.run_dir)
        self.progress = progress and self.dist.is_main
        self.amp = cfg.optim.amp and self.device.type == "cuda"
        torch.manual_seed(cfg.seed + self.dist.rank)

        model = PortraitMattingModel(cfg.model)
        if cfg.init:
            self._load_weights(model, Path(cfg.init))
        self.model = model.to(self.device)
        decay = [p for n, p in model.named_parameters() if "weight" in n]
        other = [p for n, p in model.named_parameters() if "weight" not in n]
        self.optimizer = torch.optim.Adam(
            [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=cfg.optim.lr, betas=cfg.optim.betas,
        )
        self.step = 0
        state = None if fresh else load_state(self.run_dir)
        if state is not None:
            self._restore(state)
        if self.dist.world > 1:
            if self.device.type == "cuda":
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            # find_unused_parameters: a batch with no uncertain cell never calls the refiner
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )

    @property
    def bare_model(self) -> torch.nn.Module:
        return self.model.module if hasattr(self.model, "module") else self.model

    @staticmethod
    def _load_weights(model: torch.nn.Module, path: Path) -> None:
        from safetensors.torch import load_file

        from matting_core.checkpoint import CheckpointError

        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint not found")
        try:
            model.load_state_dict(load_file(str(path), device="cpu"))
        except (RuntimeError, OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise CheckpointError(f"{path}: weights do not fit the configured [model] ({first})") from exc

    def _restore(self, state: dict[str, Any]) -> None:
        ckpt = self.run_dir / "checkpoints" / state["checkpoint"]
        self._load_weights(self.model, ckpt)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if self.dist.is_main:
            torch.set_rng_state(state["rng_cpu"])
            if self.device.type == "cuda" and state["rng_cuda"].numel():
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        else:
            torch.manual_seed(self.cfg.seed + 1009 * self.dist.rank + self.step)
        log.info("resumed %s at step %d from %s", self.run_dir, self.step, ckpt.name)

    # -- outputs (main process only) ---------------------------------------------------------------
    def save(self) -> Path:
        from matting_core.checkpoint import save_checkpoint

        ckpt_dir = self.run_dir / "checkpoints"
        name = f"step_{self.step:08d}.safetensors"
        path = save_checkpoint(self.bare_model, ckpt_dir / name, extra={"step": self.step, "size": self.cfg.augment.size})
        save_state(self.run_dir, self.step, name, self.optimizer, self.device)
        keep = self.cfg.checkpoint.keep
        if keep:
            old = sorted(ckpt_dir.glob("step_*.safetensors"))[:-keep]
            for p in old:
                p.unlink(missing_ok=True)
                p.with_suffix(".json").unlink(missing_ok=True)
        log.info("saved %s", path)
        return path

    def _write_csv(self, name: str, row: dict[str, Any]) -> None:
        path = self.run_dir / name
        new = not path.is_file()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    @torch.no_grad()
    def validate(self, items: list[ValItem]) -> dict[str, float]:
        """Metrics on the validation items, written to val.csv / val/step_X.json / val/step_X.png."""
        from matting_core.evaluate import EvalItem, EvalReport, ImageScore
        from matting_core.metrics import benchmark_trimap, evaluate_pair

        if not items:
            return {}
        model = self.bare_model
        was_training = model.training
        model.eval()
        report = EvalReport(scores=[])
        preds = []
        for it in items:
            x = torch.from_numpy(it.image).to(self.device).permute(2, 0, 1)[None].float() / 255.0
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                alpha = model(x).alpha[0, 0].float().clamp(0, 1).cpu().numpy()
            trimap = it.trimap if it.trimap is not None else benchmark_trimap(it.alpha)
            report.scores.append(ImageScore(it.name, evaluate_pair(alpha, it.alpha, trimap),
                                            EvalItem(it.name, Path(), Path())))
            preds.append(alpha)
        model.train(was_training)
        mean = report.mean
        out_dir = self.run_dir / "val"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"step_{self.step:08d}.json").write_text(json.dumps(report.to_dict(), indent=2))
        self._write_csv("val.csv", {"step": self.step, **{k: round(v, 6) for k, v in mean.items()}})
        save_picture_grid(items[: self.cfg.val.grid], preds, out_dir / f"step_{self.step:08d}.png")
        log.info("step %d validation: %s", self.step, ", ".join(f"{k} {v:.4f}" for k, v in mean.items()))
        return mean

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train until ``optim.steps`` (or ``stop_after`` more steps); Ctrl-C saves and returns interrupted."""
        from tqdm import tqdm

        cfg = self.cfg
        total = cfg.optim.steps
        result = TrainResult(step=self.step)
        if self.step >= total:
            log.info("run %s is already at step %d of %d", self.run_dir, self.step, total)
            result.final_checkpoint = self.run_dir / FINAL_FILE if (self.run_dir / FINAL_FILE).is_file() else None
            return result
        end = total if stop_after is None else min(total, self.step + stop_after)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=list))
        train_samples, held_out = _folder_samples(cfg) if cfg.data.kind == "folders" else ([], [])
        val_items = validation_items(cfg, held_out) if self.dist.is_main else []
        stream = train_stream(cfg, train_samples, self.dist, self.device, self.step)
        self.model.train()
        bar = tqdm(total=total, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        images_per_step = cfg.data.batch_size * self.dist.world
        rate, bad_steps, last_saved = 0.0, 0, -1
        try:
            while self.step < end:
                t0 = time.perf_counter()
                batch = next(stream)
                lr = cfg.optim.lr_at(self.step)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                    out = self.model(batch.image)
                loss, parts = matting_loss(out, batch, cfg.loss)
                if not math.isfinite(parts["total"]):
                    bad_steps += 1
                    log.warning("step %d: non-finite loss %s, skipping the update", self.step, parts)
                    if bad_steps >= 10:
                        raise FloatingPointError("10 non-finite losses in a row: lower the lr or check the data")
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                bad_steps = 0
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                self.optimizer.step()
                self.step += 1
                result.losses.append(parts["total"])
                dt = time.perf_counter() - t0
                rate = images_per_step / dt if rate == 0 else 0.9 * rate + 0.1 * images_per_step / dt
                bar.set_postfix(loss=f"{parts['total']:.4f}", img_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
                if self.dist.is_main:
                    if self.step % cfg.log_every == 0 or self.step == end:
                        self._write_csv("log.csv", {"step": self.step, "lr": lr, "img_per_s": round(rate, 3),
                                                    **{k: round(v, 6) for k, v in parts.items()}})
                    if self.step % cfg.checkpoint.every == 0:
                        self.save()
                        last_saved = self.step
                    if cfg.val.every and self.step % cfg.val.every == 0:
                        result.val_metrics = self.validate(val_items)
        except KeyboardInterrupt:
            result.interrupted = True
            if self.dist.is_main:
                bar.write(f"interrupted at step {self.step}: saving")
        finally:
            bar.close()
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[attr-defined]
        result.step = self.step
        if self.dist.is_main and self.step != last_saved:
            self.save()
        if self.dist.is_main and self.step >= total and not result.interrupted:
            from matting_core.checkpoint import save_checkpoint

            if not cfg.val.every or self.step % cfg.val.every:
                result.val_metrics = self.validate(val_items)
            # "size": the engine runs the coarse pass at this scale by default (EngineOptions.coarse_scale).
            result.final_checkpoint = save_checkpoint(self.bare_model, self.run_dir / FINAL_FILE,
                                                      extra={"step": self.step, "size": self.cfg.augment.size})
        if self.dist.world > 1:
            import torch.distributed as tdist

            tdist.barrier()
        return result

    def close(self) -> None:
        if self.dist.world > 1:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


def save_picture_grid(items: list[ValItem], preds: list[np.ndarray], path: Path, height: int = 160) -> None:
    """One row per validation image: image | truth | prediction | absolute error."""
    import cv2

    rows = []
    for it, pred in zip(items, preds):
        grey = lambda a: np.repeat((np.clip(a, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)  # noqa: E731
        err = cv2.applyColorMap((np.abs(pred - it.alpha) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        row = np.concatenate([it.image, grey(it.alpha), grey(pred), err], axis=1)
        scale = height / row.shape[0]
        rows.append(cv2.resize(row, (max(1, round(row.shape[1] * scale)), height), interpolation=cv2.INTER_AREA))
    if not rows:
        return
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def train(cfg: TrainConfig, *, fresh: bool = False, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Build a :class:`Trainer` (resuming from ``cfg.run_dir`` unless ``fresh``) and run it."""
    trainer = Trainer(cfg, fresh=fresh, progress=progress)
    try:
        return trainer.fit(stop_after)
    finally:
        trainer.close()


def with_overrides(cfg: TrainConfig, run_dir: str | None = None, steps: int | None = None,
                   device: str | None = None) -> TrainConfig:
    """The config with command-line overrides applied."""
    if run_dir:
        cfg = replace(cfg, run_dir=run_dir)
    if steps:
        cfg = replace(cfg, optim=replace(cfg.optim, steps=steps))
    if device:
        cfg = replace(cfg, device=device)
    return cfg
