"""Pack the shared training material into one small folder that travels to a GPU machine.

The GPU machine gets at most 64 MiB with the checkout and no ``../shared``, so this re-encodes a chosen subset
of people photos (teacher alpha), room scenes and wallpapers into three concatenated byte blobs + a JSON
index. A validation split, held out *by source folder and file stem hash*, is never packed for training;
its list is written beside the pack so evaluation uses exactly the photos training never saw.

    python recipes/pack_data.py --shared ../shared --out .carry/pack
"""

from __future__ import annotations

import argparse
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from matting_core.data.packed import write_blob

#: (folder under data/, max images for training, long side px). Tight face crops are capped so they
#: don't dominate (SOURCES.md); full-body street photos and the real photos with their own rooms are kept.
PEOPLE_SOURCES = (
    ("people-rvm", 10_000, 384),
    ("people2-rvm/ccp", 1_000, 320),
    ("people2-rvm/humanfaces_kaggle", 700, 160),
    ("people2-rvm/facemask_cd", 600, 256),
)
VAL_PERCENT = 6


def is_validation(source: str, stem: str) -> bool:
    """Deterministic held-out split: ~VAL_PERCENT % of every source, chosen by a hash of source/stem."""
    digest = hashlib.sha1(f"{source}/{stem}".encode()).hexdigest()
    return int(digest[:8], 16) % 100 < VAL_PERCENT


def _fit(img: np.ndarray, long_side: int, interp: int = cv2.INTER_AREA) -> np.ndarray:
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    return img if s >= 1 else cv2.resize(img, (round(w * s), round(h * s)), interpolation=interp)


def _encode_person(args: tuple[Path, Path, int, int]) -> tuple[bytes, bytes, list[list[int]]] | None:
    img_path, alpha_path, long_side, quality = args
    img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    alpha = cv2.imread(str(alpha_path), cv2.IMREAD_GRAYSCALE)
    if img is None or alpha is None or img.shape[:2] != alpha.shape[:2]:
        return None
    img, alpha = _fit(img, long_side), _fit(alpha, long_side)
    # 6-bit alpha (steps of 4/255, invisible) compresses ~2x better as PNG; exact 0 and 255 are kept.
    alpha = np.where(alpha >= 254, 255, (alpha.astype(np.int32) + 2) // 4 * 4).clip(0, 255).astype(np.uint8)
    ok1, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    ok2, png = cv2.imencode(".png", alpha, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    # Person-free boxes (alpha == 0 throughout) of the photo's own background: real backgrounds for compositing.
    boxes = []
    h, w = alpha.shape
    side = max(64, min(h, w) // 3)
    empty = (alpha <= 2).astype(np.uint8)
    integral = cv2.integral(empty)
    for y in range(0, h - side + 1, side // 2):
        for x in range(0, w - side + 1, side // 2):
            if integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x] == side * side:
                boxes.append([y, x, side])
    return (jpg.tobytes(), png.tobytes(), boxes[:8]) if ok1 and ok2 else None


def _encode_jpeg(args: tuple[Path, int, int]) -> bytes | None:
    path, long_side, quality = args
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    ok, jpg = cv2.imencode(".jpg", _fit(img, long_side), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpg.tobytes() if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path(".carry/pack"))
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--scenes", type=int, default=1100)
    ap.add_argument("--wallpapers", type=int, default=30)
    args = ap.parse_args()
    data = args.shared / "data"
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    jobs, meta, val = [], [], []
    for source, cap, long_side in PEOPLE_SOURCES:
        images = sorted((data / source / "image").glob("*.jpg"))
        train = [p for p in images if not is_validation(source, p.stem)]
        val += [f"{source}/image/{p.name}" for p in images if is_validation(source, p.stem)]
        chosen = [train[i] for i in sorted(rng.permutation(len(train))[:cap])]
        for p in chosen:
            jobs.append((p, data / source / "alpha" / f"{p.stem}.png", long_side, args.quality))
            meta.append({"source": source, "stem": p.stem})
    with ThreadPoolExecutor(4) as pool:
        people = list(tqdm(pool.map(_encode_person, jobs), total=len(jobs), desc="people"))
    keep = [i for i, r in enumerate(people) if r is not None]
    skipped = [str(jobs[i][0]) for i, r in enumerate(people) if r is None]
    index = {
        "people": [dict(meta[i], boxes=people[i][2]) for i in keep],
        "people_rgb": write_blob(args.out, "people_rgb", [people[i][0] for i in keep]),
        "people_alpha": write_blob(args.out, "people_alpha", [people[i][1] for i in keep]),
        "skipped": skipped,
    }
    scenes = sorted((data / "scenes").glob("*.jpg"))
    scenes = [scenes[i] for i in sorted(rng.permutation(len(scenes))[: args.scenes])]
    walls = sorted((data / "backgrounds").glob("*.jpg"))
    walls = [walls[i] for i in sorted(rng.permutation(len(walls))[: args.wallpapers])]
    with ThreadPoolExecutor(4) as pool:
        bg = list(pool.map(_encode_jpeg, [(p, 256, 65) for p in scenes] + [(p, 384, 65) for p in walls]))
    index["backgrounds"] = write_blob(args.out, "backgrounds", [b for b in bg if b is not None])
    index["background_kind"] = ["scene"] * len(scenes) + ["wallpaper"] * len(walls)
    index["background_kind"] = [k for k, b in zip(index["background_kind"], bg) if b is not None]
    # Which scene files were packed, so evaluation can use only the ones training never saw.
    index["packed_scenes"] = [p.name for p in scenes]
    (args.out / "index.json").write_text(json.dumps(index))
    (args.out / "validation.txt").write_text("\n".join(val) + "\n")
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"packed {len(keep)} people ({len(skipped)} unreadable), {len(index['backgrounds'])} backgrounds, "
          f"{len(val)} held out; {total / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
