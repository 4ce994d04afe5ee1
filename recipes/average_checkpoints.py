"""Average the weights of checkpoints of one architecture (a uniform "model soup" of one training trajectory).

Why: single checkpoints of these short windows are noisy. The fifth (coarse-only, CPU) window's end point was
worse than its start on two held-out sets and better on the third; the mean of the two was better than the
start on 16 of the 18 card figures (models/README.md). Integer buffers (BatchNorm's batch counters) are
taken from the last file, as is its provenance, which records what was averaged.

    python recipes/average_checkpoints.py models/default.safetensors runs/cpu/default.safetensors --out avg.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from matting_core.checkpoint import CheckpointError, load_checkpoint, read_extra, save_checkpoint
from matting_core.model import PortraitMattingModel


def average(paths: list[Path]) -> PortraitMattingModel:
    """The model whose floating-point weights are the mean of ``paths``' (same config required)."""
    if not paths:
        raise CheckpointError("nothing to average")
    models = [load_checkpoint(p) for p in paths]
    cfg = models[0][1]
    for p, (_, c) in zip(paths, models):
        if c != cfg:
            raise CheckpointError(f"{p}: a different architecture than {paths[0]}; only one model's checkpoints average")
    states = [m.state_dict() for m, _ in models]
    mean = {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else states[-1][k]
            for k, v in states[0].items()}
    out = models[-1][0]
    out.load_state_dict(mean)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model = average(args.checkpoints)
    extra = {**read_extra(args.checkpoints[-1]),
             "averaged": [{"file": p.name, "step": read_extra(p).get("step")} for p in args.checkpoints]}
    save_checkpoint(model, args.out, dtype=torch.float16, extra=extra)
    print(f"wrote {args.out}: mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
