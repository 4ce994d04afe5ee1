"""The model card's held-out sets (recipes/evaluate_default.py) are built from the pack's validation list."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest


def _person(path: Path, alpha_path: Path) -> None:
    rgb = np.full((64, 48, 3), 120, np.uint8)
    alpha = np.zeros((64, 48), np.uint8)
    alpha[20:, 12:36] = 255  # a figure cut by the bottom edge only: pasteable
    path.parent.mkdir(parents=True, exist_ok=True)
    alpha_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb)
    cv2.imwrite(str(alpha_path), alpha)


def test_held_out_names_with_spaces_are_evaluated(tmp_path, load_recipe):
    """Many held-out names contain spaces ("humanfaces_kaggle_1 (102).jpg"); splitting the list on whitespace
    silently dropped them from the model card's photo set."""
    shared, pack = tmp_path / "shared", tmp_path / "pack"
    names = ["people-rvm/image/plain.jpg", "people2-rvm/faces/image/face (102).jpg"]
    for rel in names:
        _person(shared / "data" / rel, shared / "data" / rel.replace("/image/", "/alpha/").replace(".jpg", ".png"))
    (shared / "data" / "scenes").mkdir(parents=True)
    for name in ("seen.jpg", "unseen.jpg"):
        cv2.imwrite(str(shared / "data" / "scenes" / name), np.full((32, 32, 3), 40, np.uint8))
    pack.mkdir()
    (pack / "validation.txt").write_text("\n".join(names) + "\n")
    (pack / "index.json").write_text(json.dumps({"packed_scenes": ["seen.jpg"]}))

    photos, comps = load_recipe("evaluate_default").build_sets(shared, pack, n_photos=10, n_comp=10, frame=(72, 128))
    assert sorted(rel for rel, _, _ in photos) == sorted(names)
    assert len(comps) == 2
    for _rel, img, gt in comps:
        assert img.shape == (72, 128, 3) and gt.shape == (72, 128)
        assert gt.max() > 0.9 and gt[0].max() == 0.0  # pasted bottom-anchored: the top row is background


def test_seen_sets_use_the_training_people_and_scenes(tmp_path, load_recipe):
    """``--seen`` scores on what training used (packed people, packed scenes), the held-out sets never do."""
    shared, pack = tmp_path / "shared", tmp_path / "pack"
    data = shared / "data"
    for rel in ("people-rvm/image/trained.jpg", "people-rvm/image/held.jpg"):
        _person(data / rel, data / rel.replace("/image/", "/alpha/").replace(".jpg", ".png"))
    (data / "scenes").mkdir(parents=True)
    cv2.imwrite(str(data / "scenes" / "seen.jpg"), np.full((32, 32, 3), 200, np.uint8))
    cv2.imwrite(str(data / "scenes" / "unseen.jpg"), np.full((32, 32, 3), 40, np.uint8))
    pack.mkdir()
    (pack / "validation.txt").write_text("people-rvm/image/held.jpg\n")
    index = {"packed_scenes": ["seen.jpg"], "people": [{"source": "people-rvm", "stem": "trained", "boxes": []}]}
    (pack / "index.json").write_text(json.dumps(index))
    build = load_recipe("evaluate_default").build_sets

    for seen, person, scene_value in ((False, "held", 40), (True, "trained", 200)):
        photos, comps = build(shared, pack, n_photos=10, n_comp=10, frame=(72, 128), seen=seen)
        assert [rel for rel, _, _ in photos] == [f"people-rvm/image/{person}.jpg"]
        assert len(comps) == 1
        top = comps[0][1][0].astype(int)  # the top row is background: the scene's grey
        assert np.abs(top - scene_value).max() <= 2


def test_item_records_say_where_the_error_sits_and_rank_the_worst(load_recipe):
    """items.json / metrics.md trace a mean to its items: each record splits SAD by trimap area and the
    table ranks the largest-SAD items and says what share of the set's SAD they carry."""
    from matting_core.metrics import benchmark_trimap, evaluate_pair

    ev = load_recipe("evaluate_default")
    gt = np.zeros((60, 80), np.float32)
    gt[20:, 30:50] = 1.0  # a person two thirds of the frame high, bottom-anchored
    assert ev.person_extent(gt) == {"height": pytest.approx(40 / 60), "area": pytest.approx(800 / 4800)}
    tri = benchmark_trimap(gt, kernel=5)
    scenery = gt.copy()
    scenery[:10, :10] = 1.0  # a wardrobe kept as person, far from the edge band
    hole = gt.copy()
    hole[40:50, 36:44] = 0.0  # a hole inside the person
    recs = [ev.item_record(name, p, gt, tri, evaluate_pair(p, gt, tri), evaluate_pair(gt, gt, tri))
            for name, p in (("scenery", scenery), ("hole", hole), ("clean", gt))]
    assert "coarse SAD" not in recs[0]
    assert ev.item_record("x", hole, gt, tri, evaluate_pair(hole, gt, tri), None, {"SAD": 1.5})["coarse SAD"] == 1.5
    assert recs[0]["SAD background"] == pytest.approx(0.1) and recs[0]["SAD foreground"] == 0.0
    assert recs[1]["SAD foreground"] == pytest.approx(0.08) and recs[1]["SAD background"] == 0.0
    assert recs[2]["SAD"] == 0.0 and recs[0]["teacher SAD"] == 0.0
    lines = ev.worst_items_table(recs, n=2)
    table = [line for line in lines if line.startswith("| scenery") or line.startswith("| hole")]
    assert [line.split(" | ")[0] for line in table] == ["| scenery", "| hole"]  # largest SAD first
    assert "100% of the set's SAD" in lines[0]
    assert "56% of SAD in the background" in lines[-2] and "44% inside the person" in lines[-2]
