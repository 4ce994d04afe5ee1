"""Score a model on held-out data the way the model card reports it (the paper's Table 5 question).

Two held-out sets, built from material training never saw (``validation.txt`` of the pack: ~6% of every
people source, chosen by hash; room scenes that were not packed):
- ``photos``: held-out real photos with their own backgrounds; ground truth = the teacher's (RVM) alpha, so
  the teacher itself is not scored here.
- ``composites``: held-out people (foreground colours estimated from image + alpha) pasted bottom-anchored
  onto unseen room scenes at 1280x720 (`--frame`), so the ground truth is exact and the teacher *is* scored.
Modes: the model with CRA, without CRA (same weights), coarse only (the bilinearly upsampled coarse alpha),
all three with the engine's clearing of faint alpha in background cells (``--clear-background``),
filling of foreground cells (``--fill-foreground``) and dropping of unsure islands (``--drop-islands``), the
model with CRA with clearing and filling but islands kept, the model with CRA and the paper's plain paste
(none of the three), and the teacher. Metrics: SAD, SAD-T (30x30
benchmark trimap), Grad, Conn (/1000 conventions), MSE, IoU.
Per item (``items.json``, and the largest-SAD rows in ``metrics.md``): the model's SAD split by the
benchmark trimap's areas (scenery kept as person / edge band / holes in the person), the person's height, the
coarse-only SAD and the teacher's SAD; ``<set>_worst.jpg`` pictures the four largest-SAD items.
The issue's own eyeball check comes out too: ``named_photos.jpg``, scikit-image's astronaut and matplotlib's
Grace Hopper (image | alpha | composite), when those two packages are installed (``.[dev,train]``).
``--seen`` builds both sets from training material instead (packed people, packed scenes): a model as bad
there as on held-out data is under-trained, not over-fitted.

    python recipes/evaluate_default.py --shared ../shared --pack .carry/pack --out docs/model_eval
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from matting_core.backends.peer import RvmPeer
from matting_core.cpu_memory import restart_with_cpu_allocator
from matting_core.data.packed import estimate_foreground
from matting_core.engine import EngineOptions, MattingEngine
from matting_core.metrics import benchmark_trimap, evaluate_pair, mean_metrics, sad_by_trimap
from matting_core.regions import clear_faint_background, drop_unsure_islands, fill_definite_foreground

FRAME = (720, 1280)


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def composite(person_rgb: np.ndarray, person_alpha: np.ndarray, scene: np.ndarray, key: str,
              frame: tuple[int, int] = FRAME):
    """Paste a person (uint8 RGB + float alpha) bottom-anchored onto ``scene`` resized to ``frame`` (h, w)."""
    h, w = frame
    rng = _rng(key)
    bg = cv2.resize(scene, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    ph, pw = person_alpha.shape
    s = h * rng.uniform(0.75, 1.0) / ph
    nh, nw = min(h, round(ph * s)), min(w, round(pw * s))
    t_rgb = torch.from_numpy(person_rgb).permute(2, 0, 1)[None].float() / 255.0
    t_a = torch.from_numpy(person_alpha)[None, None]
    fg = estimate_foreground(t_rgb, t_a)[0].permute(1, 2, 0).numpy()
    fg = cv2.resize(fg, (nw, nh), interpolation=cv2.INTER_LINEAR)
    a = cv2.resize(person_alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x0 = int(rng.integers(0, w - nw + 1))
    alpha = np.zeros((h, w), np.float32)
    fgf = np.zeros((h, w, 3), np.float32)
    alpha[h - nh :, x0 : x0 + nw] = a
    fgf[h - nh :, x0 : x0 + nw] = fg
    img = alpha[..., None] * fgf + (1 - alpha[..., None]) * bg
    return (img * 255 + 0.5).clip(0, 255).astype(np.uint8), alpha


def _touches_side_or_top(alpha: np.ndarray) -> bool:
    a = alpha > 0.3
    return bool(a[:2].mean() > 0.03 or a[:, :2].mean() > 0.03 or a[:, -2:].mean() > 0.03)


def build_sets(shared: Path, pack: Path, n_photos: int, n_comp: int, frame: tuple[int, int] = FRAME,
               seen: bool = False):
    """The held-out photo and composite sets; ``seen`` builds the same kind of sets from the people and room
    scenes training *did* use, to tell under-training (as bad there) from a generalisation gap."""
    data = shared / "data"
    index = json.loads((pack / "index.json").read_text())
    if "packed_scenes" not in index:
        raise SystemExit(f"{pack}: made by an older pack_data.py (no list of packed scenes); re-run it")
    if seen:  # named the way pack_data.py names validation.txt's entries (it packs only <source>/image/*.jpg)
        held = [f"{p['source']}/image/{p['stem']}.jpg" for p in index["people"]]
    else:
        held = (pack / "validation.txt").read_text().splitlines()  # one per line: names contain spaces
    packed = set(index["packed_scenes"])
    scenes = [s for s in sorted((data / "scenes").glob("*.jpg")) if (s.name in packed) == seen]
    photos, comps = [], []
    for rel in held:
        img = cv2.imread(str(data / rel), cv2.IMREAD_COLOR)
        alpha = cv2.imread(str(data / rel.replace("/image/", "/alpha/")).rsplit(".", 1)[0] + ".png", 0)
        if img is None or alpha is None:
            continue
        rgb, a = img[:, :, ::-1].copy(), alpha.astype(np.float32) / 255.0
        photos.append((rel, rgb, a))
    pick = _rng("photos").permutation(len(photos))[:n_photos]
    photo_set = [photos[i] for i in sorted(pick)]
    pasteable = [p for p in photos if not _touches_side_or_top(p[2]) and p[2].mean() > 0.02]
    order = _rng("comps").permutation(len(pasteable))[:n_comp]
    for j, i in enumerate(order):
        rel, rgb, a = pasteable[i]
        scene = cv2.imread(str(scenes[j * 7 % len(scenes)]))[:, :, ::-1]
        img, gt = composite(rgb, a, scene, rel, frame)
        comps.append((rel, img, gt))
    return photo_set, comps


def person_extent(gt: np.ndarray) -> dict[str, float]:
    """How much of the frame the person fills: the height of the alpha >= 0.5 rows and the area share."""
    rows = np.flatnonzero((gt >= 0.5).any(1))
    height = (rows[-1] - rows[0] + 1) / gt.shape[0] if rows.size else 0.0
    return {"height": float(height), "area": float((gt >= 0.5).mean())}


def item_record(rel: str, pred: np.ndarray, gt: np.ndarray, tri: np.ndarray, metrics: dict,
                teacher: dict | None, coarse: dict | None = None) -> dict:
    """One item's numbers for ``items.json``: where the error sits (trimap areas), how big the person
    is, the coarse-only SAD (is a hole the coarse network's or the refiner's?) and the teacher's SAD on
    the same frame, so a mean can be traced to the items that make it."""
    rec = {"item": rel, **person_extent(gt), **{k: metrics[k] for k in ("SAD", "SAD-T", "IoU")},
           **{f"SAD {area}": v for area, v in sad_by_trimap(pred, gt, tri).items()}}
    if coarse is not None:
        rec["coarse SAD"] = coarse["SAD"]
    if teacher is not None:
        rec["teacher SAD"], rec["teacher IoU"] = teacher["SAD"], teacher["IoU"]
    return rec


def score(engine: MattingEngine, teacher: RvmPeer | None, items, name: str, grid_rows: list, clear: float,
          fill: float, records: list | None = None, worst: list | None = None, n_worst: int = 4,
          drop: float = 0.0):
    """Mean metrics per mode; ``records`` gets one :func:`item_record` per item (model with CRA) and
    ``worst`` the ``n_worst`` items with the largest SAD as (SAD, (rgb, alpha, gt)) for a picture."""
    rows: dict[str, list] = {"CRA": [], "w/o CRA": [], "coarse only": [], "CRA, islands kept": [],
                             "CRA, plain paste": [], "teacher": []}
    # each mode is run once and cleared / filled / island-dropped here, so the plain paste costs nothing
    engine.clear_background, engine.fill_foreground, engine.drop_islands = 0.0, 1.0, 0.0

    r = engine.cfg.region_size

    def cleared_kept(alpha: torch.Tensor, out) -> torch.Tensor:
        """Cleared and filled, islands kept."""
        alpha = clear_faint_background(alpha, out.trimap_logits, clear, r)
        return fill_definite_foreground(alpha, out.trimap_logits, fill, r)

    def as_numpy(alpha: torch.Tensor) -> np.ndarray:
        return alpha[0, 0].float().numpy()

    def cleared(alpha: torch.Tensor, out) -> np.ndarray:
        return as_numpy(drop_unsure_islands(cleared_kept(alpha, out), drop, r))

    for k, (rel, rgb, gt) in enumerate(tqdm(items, desc=name)):
        tri = benchmark_trimap(gt)
        image = engine.to_tensor(rgb)
        engine.use_cra = True
        out = engine.run(image)
        kept = cleared_kept(out.alpha, out)  # cleared and filled once, for the "CRA" and "islands kept" rows
        a_cra = as_numpy(drop_unsure_islands(kept, drop, r))
        rows["CRA"].append(evaluate_pair(a_cra, gt, tri))
        rows["CRA, islands kept"].append(evaluate_pair(as_numpy(kept), gt, tri))
        rows["CRA, plain paste"].append(evaluate_pair(as_numpy(out.alpha), gt, tri))
        rows["coarse only"].append(evaluate_pair(cleared(out.upsampled_alpha, out), gt, tri))
        engine.use_cra = False
        out = engine.run(image)
        rows["w/o CRA"].append(evaluate_pair(cleared(out.alpha, out), gt, tri))
        t_metrics = None
        if teacher is not None and name == "composites":
            teacher.reset()
            t_metrics = evaluate_pair(teacher(rgb).alpha, gt, tri)
            rows["teacher"].append(t_metrics)
        if records is not None:
            records.append(item_record(rel, a_cra, gt, tri, rows["CRA"][-1], t_metrics, rows["coarse only"][-1]))
        if worst is not None:
            worst.append((rows["CRA"][-1]["SAD"], (rgb, a_cra, gt)))
            worst.sort(key=lambda w: -w[0])
            del worst[n_worst:]
        if k < 4:
            grid_rows.append((rgb, a_cra, gt))
    return {mode: mean_metrics(r) for mode, r in rows.items() if r}


def worst_items_table(records: list[dict], n: int = 8) -> list[str]:
    """Markdown rows for the ``n`` items with the largest SAD, and the share of the set's SAD they carry."""
    total = sum(r["SAD"] for r in records) or 1.0
    ranked = sorted(records, key=lambda r: -r["SAD"])[:n]
    has_teacher = all("teacher SAD" in r for r in ranked)
    head = "| item | person height | SAD | in background | in edge band | in person | IoU |"
    lines = [f"{len(ranked)} largest SAD of {len(records)} items, {sum(r['SAD'] for r in ranked) / total:.0%} of the "
             f"set's SAD; SAD split by the benchmark trimap's areas:", "",
             head + (" teacher SAD |" if has_teacher else ""), "|---" * (7 + has_teacher) + "|"]
    for r in ranked:
        line = (f"| {r['item']} | {r['height']:.2f} | {r['SAD']:.2f} | {r['SAD background']:.2f} | "
                f"{r['SAD unknown']:.2f} | {r['SAD foreground']:.2f} | {r['IoU']:.3f} |")
        lines.append(line + (f" {r['teacher SAD']:.2f} |" if has_teacher else ""))
    sums = {a: sum(r[f"SAD {a}"] for r in records) / total for a in ("background", "unknown", "foreground")}
    lines += ["", f"Whole set: {sums['background']:.0%} of SAD in the background, {sums['unknown']:.0%} in the "
              f"edge band, {sums['foreground']:.0%} inside the person.", ""]
    return lines


def picture(rows, bg: np.ndarray, path: Path, height: int = 220) -> None:
    """image | predicted alpha | composite on a new background [| ground truth], one row per example
    (``gt`` None: no ground-truth column)."""
    out = []
    for rgb, a, gt in rows:
        h, w = a.shape
        b = cv2.resize(bg, (w, h)).astype(np.float32)
        comp = (rgb * a[..., None] + b * (1 - a[..., None])).astype(np.uint8)
        g = lambda m: np.repeat((m * 255).astype(np.uint8)[..., None], 3, 2)  # noqa: E731
        row = np.concatenate([rgb, g(a), comp] + ([g(gt)] if gt is not None else []), 1)
        out.append(cv2.resize(row, (round(row.shape[1] * height / h), height)))
    if not out:
        return
    width = max(r.shape[1] for r in out)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in out], 0)
    cv2.imwrite(str(path), grid[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])


def named_photos() -> list[tuple[str, np.ndarray]]:
    """The two well-known portraits anyone can check the model on (no ground truth: a picture, not a score)."""
    out = []
    try:
        from skimage import data

        out.append(("astronaut", data.astronaut()))
    except ImportError:
        print("scikit-image not installed: no astronaut picture")
    try:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            buf = np.frombuffer(f.read(), np.uint8)
        out.append(("grace_hopper", cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()))
    except ImportError:
        print("matplotlib not installed: no Grace Hopper picture")
    return out


def named_picture(engine: MattingEngine, bg: np.ndarray, path: Path) -> None:
    """image | alpha | composite on ``bg`` for :func:`named_photos`, with the engine's defaults (CRA on)."""
    engine.use_cra = True
    picture([(rgb, engine.matte(rgb), None) for _name, rgb in named_photos()], bg, path, height=300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--pack", type=Path, default=Path(".carry/pack"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/model_eval"))
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--composites", type=int, default=30)
    ap.add_argument("--background", type=Path, default=Path("assets/backgrounds/adwaita.jpg"))
    ap.add_argument("--frame", default="1280x720", help="composite size WxH")
    ap.add_argument("--coarse-scale", type=float, default=None, help="engine coarse scale (default: automatic)")
    ap.add_argument("--clear-background", type=float, default=EngineOptions.clear_background,
                    help="the engine's clearing of faint alpha in background cells (0 = the paper's plain paste)")
    ap.add_argument("--drop-islands", type=float, default=EngineOptions.drop_islands,
                    help="the engine's dropping of patches of alpha with too few solid cells (0 = off)")
    ap.add_argument("--fill-foreground", type=float, default=EngineOptions.fill_foreground,
                    help="the engine's stretch of alpha to 1 in foreground cells (1 = the paper's plain paste)")
    ap.add_argument("--seen", action="store_true",
                    help="score on the training people and packed room scenes instead of the held-out ones")
    args = ap.parse_args()
    fw, fh = (int(v) for v in args.frame.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    engine = MattingEngine.load(args.model, EngineOptions(coarse_scale=args.coarse_scale))
    peer_path = args.shared / "peers" / "rvm.onnx"
    teacher = RvmPeer(peer_path) if peer_path.is_file() else None
    photos, comps = build_sets(args.shared, args.pack, args.photos, args.composites, (fh, fw), args.seen)
    bg = cv2.imread(str(args.background))[:, :, ::-1]
    results, pics = {}, {"photos": [], "composites": []}
    records: dict[str, list] = {"photos": [], "composites": []}
    for name, items in (("photos", photos), ("composites", comps)):
        if not items:
            continue
        worst: list = []
        results[name] = score(engine, teacher, items, name, pics[name], args.clear_background, args.fill_foreground,
                              records[name], worst, drop=args.drop_islands)
        picture(pics[name], bg, args.out / f"{name}.jpg")
        picture([w[1] for w in worst], bg, args.out / f"{name}_worst.jpg")
    engine.clear_background, engine.fill_foreground = args.clear_background, args.fill_foreground
    engine.drop_islands = args.drop_islands
    named_picture(engine, bg, args.out / "named_photos.jpg")
    results["counts"] = {"photos": len(photos), "composites": len(comps)}
    results["setup"] = {"frame": args.frame, "coarse_scale": args.coarse_scale or "auto",
                        "clear_background": args.clear_background, "fill_foreground": args.fill_foreground,
                        "drop_islands": args.drop_islands,
                        "material": "training (--seen)" if args.seen else "held out"}
    (args.out / "metrics.json").write_text(json.dumps(results, indent=2))
    (args.out / "items.json").write_text(json.dumps(records, indent=1))
    lines = []
    for name in ("photos", "composites"):
        if not results["counts"][name]:
            continue
        lines += [f"### {name} ({results['counts'][name]} images)", "",
                  "| mode | SAD | SAD-T | Grad | Conn | MSE | IoU |", "|---|---|---|---|---|---|---|"]
        for mode, m in results[name].items():
            lines.append(f"| {mode} | {m['SAD']:.2f} | {m['SAD-T']:.2f} | {m['Grad']:.2f} | {m['Conn']:.2f} | "
                         f"{m['MSE']:.4f} | {m['IoU']:.3f} |")
        lines.append("")
        lines += [f"#### {name}: where the error sits (model with CRA)", ""] + worst_items_table(records[name])
    (args.out / "metrics.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    restart_with_cpu_allocator()  # on a CPU, over half of a batch's time was page faults without it
    main()
