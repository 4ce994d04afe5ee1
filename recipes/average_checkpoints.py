"""Average the weights of checkpoints of one architecture (a uniform "model soup" of one training trajectory).

Why: single checkpoints of these short windows are noisy. The fifth (coarse-only, CPU) window's end point was
worse than its start on two held-out sets and better on the third; the mean of the two was better than the
start on 16 of the 18 card figures (models/README.md). Integer buffers (BatchNorm's batch counters) are
taken from the last file, as is its provenance, which records what was averaged and with which weights.

    python recipes/average_checkpoints.py models/default.safetensors runs/cpu/default.safetensors --out avg.safetensors

``--weights`` makes it a weighted mean in one step; what the CPU windows ship, mean(start file, mean of the
window's last three saves), is

    python recipes/average_checkpoints.py start.safetensors s1.safetensors s2.safetensors end.safetensors \
        --weights 3 1 1 1 --out avg.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from matting_core.checkpoint import CheckpointError, load_checkpoint, read_extra, save_checkpoint
from matting_core.model import PortraitMattingModel


def average(paths: list[Path], weights: list[float] | None = None) -> PortraitMattingModel:
    """The model whose floating-point weights are the (``weights``-weighted) mean of ``paths``' (same config)."""
    if not paths:
        raise CheckpointError("nothing to average")
    if weights is None:
        weights = [1.0] * len(paths)
    if len(weights) != len(paths) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per checkpoint ({len(paths)}), not all 0; got {weights}")
    models = [load_checkpoint(p) for p in paths]
    cfg = models[0][1]
    for p, (_, c) in zip(paths, models):
        if c != cfg:
            raise CheckpointError(f"{p}: a different architecture than {paths[0]}; only one model's checkpoints average")
    states = [m.state_dict() for m, _ in models]
    w = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    mean = {k: sum(wi * s[k].double() for wi, s in zip(w, states)).to(v.dtype) if v.is_floating_point()
            else states[-1][k] for k, v in states[0].items()}
    out = models[-1][0]
    out.load_state_dict(mean)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--weights", type=float, nargs="+", help="relative weight of each checkpoint (default: equal)")
    args = ap.parse_args()
    weights = args.weights or [1.0] * len(args.checkpoints)
    try:
        model = average(args.checkpoints, weights)
    except (ValueError, CheckpointError) as exc:
        ap.error(str(exc))
    total = sum(weights)
    extra = {**read_extra(args.checkpoints[-1]),
             "averaged": [{"file": p.name, "step": read_extra(p).get("step"), "weight": round(w / total, 6)}
                          for p, w in zip(args.checkpoints, weights)]}
    save_checkpoint(model, args.out, dtype=torch.float16, extra=extra)
    kind = "weighted mean" if args.weights else "mean"
    print(f"wrote {args.out}: {kind} of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
