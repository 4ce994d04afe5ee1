"""`mattecam label`: teacher ONNX models (RVM interface and a generic one) label a folder for training."""

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from matting_core.commands import label as label_cmd
from matting_core.data.datasets import scan_dataset
from matting_core.distill import label_folder, load_teacher

RVM = Path(__file__).resolve().parents[2] / ".." / "shared" / "peers" / "rvm.onnx"


def _run(argv):
    parser = argparse.ArgumentParser()
    label_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["label", *argv])
    return args.func(args)


def _photos(folder: Path) -> None:
    folder.mkdir(parents=True)
    img = np.zeros((48, 40, 3), np.uint8)
    img[:, :20] = (200, 150, 120)
    cv2.imwrite(str(folder / "a.jpg"), img)
    cv2.imwrite(str(folder / "b.png"), np.full((30, 50, 3), 60, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image")


def _mean_rgb_model(path: Path, nchw: bool = True) -> None:
    """A fixed-size 16x16 'teacher' whose alpha is the mean of R, G, B."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, 16, 16] if nchw else [1, 16, 16, 3]
    axis = 1 if nchw else 3
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[axis], keepdims=1)
    out_shape = [1, 1, 16, 16] if nchw else [1, 16, 16, 1]
    graph = helper.make_graph([node], "mean", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.parametrize("nchw", [True, False])
def test_generic_teacher_labels_a_folder_for_the_generic_reader(tmp_path, nchw):
    _photos(tmp_path / "photos")
    _mean_rgb_model(tmp_path / "t.onnx", nchw)
    teacher = load_teacher(tmp_path / "t.onnx", providers="cpu")
    out = tmp_path / "out"
    report = label_folder(teacher, tmp_path / "photos", out, progress=False)
    assert sorted(report.written) == ["a", "b"]
    assert report.unreadable == [str(tmp_path / "photos" / "broken.jpg")]
    b = cv2.imread(str(out / "alpha" / "b.png"), cv2.IMREAD_GRAYSCALE)
    assert b.shape == (30, 50) and abs(int(b[10, 10]) - 60) <= 1  # mean of (60, 60, 60)
    a = cv2.imread(str(out / "alpha" / "a.png"), cv2.IMREAD_GRAYSCALE)
    assert a.shape == (48, 40) and a[24, 5] > 140 and a[24, 35] < 10
    assert sorted(s.name for s in scan_dataset(out).samples) == ["a", "b"]  # out/image links the photos
    again = label_folder(teacher, tmp_path / "photos", out, progress=False)
    assert again.written == [] and sorted(again.skipped_existing) == ["a", "b"]


@pytest.mark.skipif(not RVM.is_file(), reason="RVM peer not available (../shared/peers/rvm.onnx)")
def test_rvm_teacher_through_the_cli(tmp_path, capsys):
    _photos(tmp_path / "photos")
    rc = _run(["--model", str(RVM), "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "out"),
               "--threads", "1"])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "wrote 2 alpha mattes" in shown and "broken.jpg" in shown
    a = cv2.imread(str(tmp_path / "out" / "alpha" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (48, 40) and a.dtype == np.uint8


def test_missing_teacher_or_folder_is_a_clear_error(tmp_path, capsys):
    assert _run(["--model", str(tmp_path / "no.onnx"), "--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "cannot load teacher" in capsys.readouterr().err
    _mean_rgb_model(tmp_path / "t.onnx")
    assert _run(["--model", str(tmp_path / "t.onnx"), "--images", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
