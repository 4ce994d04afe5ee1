"""Train the shipped default model on a GPU from the packed material, for a fixed wall-clock budget.

GPU windows here are minutes long, so this run is built to add up across windows:
- it stops by itself at ``--minutes`` and writes the model (fp16 safetensors, config embedded) to ``--out``;
- ``--init`` starts from such a file (the previous window's result) and ``--step`` continues the schedule;
  optimizer moments are not carried (they would triple what has to travel back), Adam re-warms in ~100 steps;
- the checkpoint is also written every ``--save-every`` seconds, so a killed run still leaves its progress.
Data: ``matting_core.data.packed.PackedCompositeStream`` (decoded once into GPU memory, composited there).

    python recipes/train_default.py --pack .carry/pack --out $OUT/default.safetensors --minutes 7
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch

from matting_core.checkpoint import load_checkpoint, read_extra, save_checkpoint
from matting_core.config import ModelConfig
from matting_core.cpu_memory import restart_with_cpu_allocator
from matting_core.data.packed import PackedCompositeStream, PackedMix, preview_grid
from matting_core.losses import LossWeights, coarse_loss, matting_loss
from matting_core.model import PortraitMattingModel


def lr_at(run_step: int, base: float, warmup: int, progress: float) -> float:
    """Linear warm-up over this run's first steps, then cosine decay to 5% of ``base`` over its time budget.

    Each GPU window is one warm restart (SGDR-style): windows have unknown step counts but known lengths.
    """
    if run_step < warmup:
        return base * (run_step + 1) / warmup
    t = min(1.0, max(0.0, progress))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 / AMX); False if torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def trainable_part(model: PortraitMattingModel, stage: str) -> torch.nn.Module:
    """The module a ``--stage`` run optimises. For ``refine`` the coarse network is frozen *and* in eval mode
    (no drop-path), so the refiner learns on exactly the coarse alpha and trimap it will get at inference,
    and autograd does not track the Swin-T. Not cheaper than ``coarse`` on a CPU: 4.8 img/s against 8.1 on
    the same 2-core AVX512-BF16 EPYC (batch 16, 384 regions per image, full-resolution losses)."""
    if stage == "coarse":
        return model.coarse
    if stage == "refine":
        model.coarse.requires_grad_(False).eval()
        return model.refiner
    return model


def _share(text: str) -> float:
    """An argparse type: a share in (0, 1], so a typo fails before the minutes of set-up, not after."""
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share in (0, 1]")
    return value


def _oversample(text: str) -> tuple[str, float]:
    """An argparse type: KEY=WEIGHT with a non-empty key and a weight > 0."""
    key, sep, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = float("nan")
    if not sep or not key or not weight > 0.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=WEIGHT with a weight > 0 (e.g. with_mask=3)")
    return key, weight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", type=Path, default=None, help="continue from this checkpoint")
    ap.add_argument("--step", type=int, default=None,
                    help="schedule step to start at (default: the step --init was saved at, else 0)")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--max-steps", type=int, default=None, help="also stop after this many steps (dry runs)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--budget", type=int, default=384, help="regions refined per image while training")
    ap.add_argument("--save-every", type=float, default=120.0, help="seconds")
    ap.add_argument("--log-every", type=int, default=50, help="steps")
    ap.add_argument("--keep-snapshots", action="store_true",
                    help="periodic saves also keep a copy per step (<out>.step<N>.safetensors) for averaging")
    ap.add_argument("--log", type=Path, default=None, help="JSON-lines log path (default: beside --out)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N people (dry runs)")
    ap.add_argument("--fp32", action="store_true",
                    help="no bf16 autocast on the CPU (automatic where the CPU has no bf16 units)")
    ap.add_argument("--stage", choices=("all", "coarse", "refine"), default="all",
                    help="coarse: train only the low-resolution network (the refiner is not run and keeps its "
                         "weights); ~3x cheaper a step on a CPU. refine: train only the refinement stage on the "
                         "frozen coarse network's outputs (the paper's future-work split, other half)")
    ap.add_argument("--empty", type=float, default=0.0,
                    help="share of composites with no person in them (room only, alpha 0): teaches that furniture "
                         "is not a person (PackedMix.empty)")
    ap.add_argument("--frame-cut", action="store_true",
                    help="also paste people the photo's frame cut at the top or sides (most head-and-shoulder "
                         "crops), with the cut outside the new frame, like a webcam user (PackedMix.frame_cut_people)")
    ap.add_argument("--frame-cut-cover", type=_share, default=PackedMix.frame_cut_max_cover,
                    help="with --frame-cut: only cut people whose matte covers less than this share of their photo "
                         "(tight face crops would fill the frame and show no room; PackedMix.frame_cut_max_cover)")
    ap.add_argument("--photos", type=float, default=PackedMix.original_photo,
                    help="share of the batch that is whole photos with their own backgrounds; the difference "
                         "from the default comes out of room-scene composites (PackedMix.with_photo_share)")
    ap.add_argument("--wide", type=float, default=0.0,
                    help="share of batches made as 16:9 frames (e.g. 448 x 800 at --size 448), the shape a webcam "
                         "frame reaches the coarse network in; the rest are squares (PackedMix.wide_share)")
    ap.add_argument("--oversample", type=_oversample, action="append", default=[], metavar="KEY=WEIGHT",
                    help="draw people whose source/stem contains KEY WEIGHT times as often (repeatable; e.g. "
                         "with_mask=3 for the face-mask photos, the largest held-out error; PackedMix.oversample)")
    ap.add_argument("--foreground", type=float, default=1.0,
                    help="a 1/8 cell inside the person costs this many times a background cell in the coarse alpha "
                         "loss (LossWeights.foreground): > 1 makes holes in the person dearer than stray scenery")
    ap.add_argument("--profile", type=int, default=8, help="profile this many steps after warm-up (0 = off)")
    args = ap.parse_args()
    try:  # the mix and the loss weights check themselves; a bad --empty, --photos or --foreground fails before set-up
        weights = LossWeights(foreground=args.foreground)
        mix = PackedMix(empty=args.empty, frame_cut_people=args.frame_cut, frame_cut_max_cover=args.frame_cut_cover,
                        wide_share=args.wide, oversample=tuple(args.oversample)).with_photo_share(args.photos)
    except ValueError as e:
        ap.error(str(e))
    start = time.time()
    deadline = start + args.minutes * 60
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # Shapes are static here (fixed size, batch and region budget; --wide adds a second shape), so let cuDNN pick
    # the fastest kernels for the refiner's odd 8x8 / 2x2 convolutions over tens of thousands of regions.
    torch.backends.cudnn.benchmark = True

    if args.init is not None:
        model, cfg = load_checkpoint(args.init)
        if args.step is None:  # the checkpoint knows where its schedule stopped: no hand-kept step numbers
            args.step = int(read_extra(args.init).get("step", 0))
            print(f"continuing from step {args.step} ({args.init})", flush=True)
    else:
        torch.manual_seed(0)
        cfg = ModelConfig()
        model = PortraitMattingModel(cfg)
    args.step = args.step or 0
    model = model.to(dev).train()
    trained = trainable_part(model, args.stage)
    decay = [p for n, p in trained.named_parameters() if p.ndim > 1 and "table" not in n]
    no_decay = [p for n, p in trained.named_parameters() if not (p.ndim > 1 and "table" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    try:  # an oversample key that matches nobody is known from the index, before the pack is decoded
        stream = PackedCompositeStream(args.pack, size=args.size, batch_size=args.batch, device=dev, seed=args.step,
                                       limit=args.limit, mix=mix)
    except ValueError as e:
        ap.error(str(e))
    print(f"setup {time.time() - start:.1f}s: {stream.people.shape[0]} people, {stream.scenes.shape[0]} scenes", flush=True)
    log_path = args.log or args.out.with_suffix(".csv")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("a")  # noqa: SIM115 (closed in the finally block below)
    step, last_save, seen = args.step, time.time(), 0
    batch = None
    t0 = time.time()
    cuda = dev.type == "cuda"
    # bf16 autocast on the CPU too where it has bf16 units: measured 1.8x faster forward+backward than fp32 at
    # 512 px, batch 8, on a 2-core AVX512-BF16 machine (0.88 s vs 1.63 s). Without them (AVX2 only) bf16 is
    # emulated: a batch-16 step took ~120 s instead of 10 s in fp32 on a 2-core AMD EPYC.
    amp = cuda or (not args.fp32 and cpu_has_bf16())
    print(f"precision: {'bf16 autocast' if amp else 'fp32'}, stage: {args.stage}", flush=True)

    def save(tag: str) -> None:
        extra = {"step": step, "samples_this_run": seen, "size": args.size, "stage": args.stage, "empty": args.empty,
                 "frame_cut": args.frame_cut, "minutes": (time.time() - start) / 60}
        if args.frame_cut:
            extra["frame_cut_max_cover"] = args.frame_cut_cover
        if args.wide:
            extra["wide_share"] = args.wide
        if args.oversample:
            extra["oversample"] = dict(args.oversample)
        if args.foreground != 1.0:
            extra["foreground_weight"] = args.foreground
        save_checkpoint(model, args.out, dtype=torch.float16, extra=extra)
        print(f"[{tag}] saved {args.out} at step {step}", flush=True)
        if args.keep_snapshots and tag == "periodic":
            # Weights along the trajectory, to score and perhaps average (recipes/average_checkpoints.py): in
            # the fifth window the mean of start and end beat the end point, in the sixth the end point won, in
            # the seventh the mean of the last three saves (the low-learning-rate tail) won, in the ninth the
            # mean of the start and that tail mean, and in the tenth and eleventh too.
            shutil.copyfile(args.out, args.out.with_name(f"{args.out.stem}.step{step}{args.out.suffix}"))

    def forward_backward(b) -> dict[str, float]:
        """Forward (bf16 autocast on the GPU), loss, gradients; the caller decides whether to step."""
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            if args.stage == "coarse":
                _, coarse, up = model.coarse_stage(b.image)
            else:
                out = model(b.image, region_budget=args.budget, knn="pairwise")
        if args.stage == "coarse":
            h, w = b.image.shape[-2:]
            loss, terms = coarse_loss(coarse, up[..., :h, :w], b, weights)
        else:
            loss, terms = matting_loss(out, b, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return terms

    def timed_steps(n: int) -> None:
        """Where a step's time goes (data vs model), printed once: ~265 img/s in the first windows was far
        below what the GPU can do, and the next window should know why before tuning anything."""
        if n <= 0:
            return
        from torch.profiler import ProfilerActivity, profile

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        sync()
        t_data = t_step = 0.0
        with profile(activities=activities) as prof:
            for _ in range(n):
                t = time.time()
                b = stream.next_batch()
                sync()
                t_data += time.time() - t
                t = time.time()
                forward_backward(b)
                sync()
                t_step += time.time() - t
        opt.zero_grad(set_to_none=True)  # profiling steps do not update the weights
        print(f"profile: data {1000 * t_data / n:.1f} ms/batch, forward+loss+backward {1000 * t_step / n:.1f} ms/step",
              flush=True)
        sort = "cuda_time_total" if cuda else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=20), flush=True)

    try:
        if args.profile and (cuda or args.limit):  # on the CPU only in dry runs
            for _ in range(3):  # warm-up (cuDNN autotuning, allocator) before measuring; no weight update
                forward_backward(stream.next_batch())
            timed_steps(args.profile)
        while time.time() < deadline and (args.max_steps is None or step - args.step < args.max_steps):
            batch = stream.next_batch()
            progress = (time.time() - t0) / max(1.0, deadline - t0)
            for g in opt.param_groups:
                g["lr"] = lr_at(step - args.step, args.lr, args.warmup, progress)
            terms = forward_backward(batch)
            torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
            opt.step()
            step += 1
            seen += batch.batch_size
            if step % args.log_every == 0:
                rate = seen / (time.time() - t0)
                row = {"step": step, "time_s": round(time.time() - start, 1), "img_per_s": round(rate, 1),
                       "lr": opt.param_groups[0]["lr"], **{k: round(v, 5) for k, v in terms.items()}}
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            if time.time() - last_save > args.save_every:
                save("periodic")
                last_save = time.time()
    finally:
        save("final")
        if batch is not None:  # None when the budget ran out during setup
            import cv2

            cv2.imwrite(str(args.out.with_suffix(".batch.jpg")), preview_grid(batch, 6)[:, :, ::-1])
        log.close()


if __name__ == "__main__":
    restart_with_cpu_allocator()  # on a CPU, over half of a batch's time was page faults without it
    main()
