"""``mattecam train CONFIG``: train (or resume) a model from a TOML/JSON config; works under torchrun."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "train"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        NAME,
        help="train the matting model from a TOML/JSON config (resumes automatically; torchrun for DDP)",
        description="Train from CONFIG. Resumes from the run folder's state.pt when it exists. Multi-GPU: "
        "torchrun --nproc_per_node N -m matting_core train CONFIG. See docs/training.md.",
    )
    p.add_argument("config", type=Path, help="training config (.toml or .json), e.g. configs/p3m.toml")
    p.add_argument("--run-dir", help="override run_dir (where checkpoints, logs and state go)")
    p.add_argument("--steps", type=int, help="override optim.steps (total steps of the run)")
    p.add_argument("--stop-after", type=int, help="stop (and save) after this many more steps")
    p.add_argument("--device", help="override device: auto, cpu, cuda")
    p.add_argument("--fresh", action="store_true", help="ignore an existing state.pt and start from step 0")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matting_core.checkpoint import CheckpointError
    from matting_core.config import ConfigError
    from matting_core.data.datasets import DatasetError
    from matting_core.train import TrainConfigError, load_train_config, train, with_overrides

    try:
        cfg = with_overrides(load_train_config(args.config), args.run_dir, args.steps, args.device)
        result = train(cfg, fresh=args.fresh, stop_after=args.stop_after, progress=not args.no_progress)
    except (TrainConfigError, ConfigError, DatasetError, CheckpointError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    if result.interrupted:
        print(f"interrupted at step {result.step}; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"step {result.step} of {cfg.optim.steps} in {cfg.run_dir}")
    if result.val_metrics:
        print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in result.val_metrics.items()))
    if result.final_checkpoint:
        print(f"final weights: {result.final_checkpoint}")
    return 0
