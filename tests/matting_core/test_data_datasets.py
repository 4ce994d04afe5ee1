"""Dataset readers: layouts, unmatched/unreadable files named, deterministic splits."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from matting_core.data.datasets import (
    DatasetError,
    check_readable,
    detect_layout,
    load_sample,
    scan_dataset,
    split_samples,
)


def _img(path: Path, shape=(12, 16, 3), value=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def test_generic_pairs_by_stem_and_names_the_unmatched(tmp_path):
    for s in "abc":
        _img(tmp_path / "image" / f"{s}.jpg")
    for s in "abd":
        _img(tmp_path / "alpha" / f"{s}.png", (12, 16))
    scan = scan_dataset(tmp_path)
    assert [s.name for s in scan.samples] == ["a", "b"]
    assert any("c.jpg" in p and "without alpha" in p for p in scan.problems)
    assert any("d.png" in p and "without image" in p for p in scan.problems)


def test_generic_subfolders_become_groups(tmp_path):
    for g in ("ccp", "faces"):
        _img(tmp_path / g / "image" / "x.jpg")
        _img(tmp_path / g / "alpha" / "x.png", (12, 16))
    scan = scan_dataset(tmp_path)
    assert sorted(s.name for s in scan.samples) == ["ccp/x", "faces/x"]


def _p3m(root: Path) -> None:
    for s in ("t1", "t2"):
        _img(root / "train" / "blurred_image" / f"{s}.jpg")
        _img(root / "train" / "mask" / f"{s}.png", (12, 16))
    for split, folder in (("P3M-500-P", "blurred_image"), ("P3M-500-NP", "original_image")):
        base = root / "validation" / split
        _img(base / folder / "v.jpg")
        _img(base / "mask" / "v.png", (12, 16))
        _img(base / "trimap" / "v.png", (12, 16), 128)


def test_p3m_layout_and_splits(tmp_path):
    _p3m(tmp_path)
    assert detect_layout(tmp_path) == "p3m"
    assert len(scan_dataset(tmp_path).samples) == 2
    np_scan = scan_dataset(tmp_path, split="P3M-500-NP")
    (s,) = np_scan.samples
    assert s.image.parent.name == "original_image" and s.trimap is not None and s.trimap.name == "v.png"
    assert scan_dataset(tmp_path, split="P3M-500-P").samples[0].image.parent.name == "blurred_image"
    with pytest.raises(DatasetError, match="unknown P3M split"):
        scan_dataset(tmp_path, split="test")


def test_ppm100_layout(tmp_path):
    _img(tmp_path / "image" / "p.jpg")
    _img(tmp_path / "matte" / "p.png", (12, 16))
    assert detect_layout(tmp_path) == "ppm100"
    assert [s.name for s in scan_dataset(tmp_path).samples] == ["p"]
    with pytest.raises(DatasetError, match="only applies to P3M"):
        scan_dataset(tmp_path, split="P3M-500-P")


def test_no_usable_pairs_is_a_clear_error(tmp_path):
    _img(tmp_path / "image" / "a.jpg")
    (tmp_path / "alpha").mkdir()
    with pytest.raises(DatasetError, match=r"no usable image/alpha pairs.*a\.jpg"):
        scan_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not a dataset folder"):
        scan_dataset(tmp_path / "alpha")
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")


def test_unreadable_files_are_reported_by_name(tmp_path):
    _img(tmp_path / "image" / "good.jpg")
    _img(tmp_path / "alpha" / "good.png", (12, 16))
    (tmp_path / "image" / "bad.jpg").write_bytes(b"garbage")
    _img(tmp_path / "alpha" / "bad.png", (12, 16))
    scan = check_readable(scan_dataset(tmp_path).samples)
    assert [s.name for s in scan.samples] == ["good"]
    assert scan.problems == [f"unreadable file: {tmp_path / 'image' / 'bad.jpg'}"]
    bad = next(s for s in scan_dataset(tmp_path).samples if s.name == "bad")
    with pytest.raises(DatasetError, match="bad.jpg"):
        load_sample(bad)


def test_alpha_of_another_size_is_resized_to_the_image(tmp_path):
    _img(tmp_path / "image" / "a.jpg", (20, 30, 3))
    _img(tmp_path / "alpha" / "a.png", (10, 15), 255)
    image, alpha = load_sample(scan_dataset(tmp_path).samples[0])
    assert image.shape == (20, 30, 3) and alpha.shape == (20, 30) and alpha.dtype == np.float32
    assert alpha.min() == pytest.approx(1.0)


def test_split_is_deterministic_and_stable_when_files_are_added(tmp_path):
    for i in range(60):
        _img(tmp_path / ("g1" if i < 40 else "g2") / "image" / f"{i}.jpg", (4, 4, 3))
        _img(tmp_path / ("g1" if i < 40 else "g2") / "alpha" / f"{i}.png", (4, 4))
    samples = scan_dataset(tmp_path).samples
    train, val = split_samples(samples, 0.25)
    assert split_samples(samples, 0.25) == (train, val)
    assert 5 <= len(val) <= 25 and len(train) + len(val) == 60 and not set(train) & set(val)
    _, val_fewer = split_samples(samples[:30], 0.25)
    assert set(val_fewer) == {s for s in val if s in samples[:30]}  # membership is per file, not positional
    train_g, val_g = split_samples(samples, val_groups=["g2"])
    assert {s.group for s in val_g} == {"g2"} and len(val_g) == 20
    with pytest.raises(DatasetError, match="g3"):
        split_samples(samples, val_groups=["g3"])
