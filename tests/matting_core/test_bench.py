"""The benchmark harness: inputs, planning, peer ratios, table and JSON output (not its timings)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from matting_core import bench
from matting_core.backends.peer import default_peer_path
from matting_core.bench import (
    PEER,
    BenchCase,
    attach_peer_ratios,
    bench_frame,
    format_table,
    parse_size,
    plan_cases,
    region_budget,
)

REQUIRED = {"size", "cra", "device", "backend", "total_ms", "fps", "gflops", "regions", "peak_mem_mb"}


def _args(**kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_parse_size_accepts_w_x_h_and_explains_mistakes():
    assert parse_size("1280x720") == (1280, 720)
    assert parse_size("1152X1792") == (1152, 1792)
    with pytest.raises(argparse.ArgumentTypeError, match="W x H"):
        parse_size("1280*720")
    with pytest.raises(argparse.ArgumentTypeError, match="too small"):
        parse_size("8x8")


def test_region_budget_modes():
    assert region_budget("auto", 1280, 720) == 2 * (90 + 160)  # 2*(h8+w8) of the 16-padded frame
    assert region_budget("auto", 1920, 1080) == 2 * (136 + 240)  # 1080 pads to 1088
    assert region_budget("all", 1280, 720) is None
    assert region_budget("300", 1280, 720) == 300
    for bad in ("0", "many"):
        with pytest.raises(ValueError, match="--regions"):
            region_budget(bad, 1280, 720)


@pytest.mark.parametrize(("w", "h"), [(320, 180), (180, 320), (333, 211)])
def test_bench_frame_has_the_requested_size(w, h):
    frame, name = bench_frame(w, h)
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8
    assert frame.std() > 10  # real content, not a flat fill
    assert name


def test_bench_frame_from_a_file_is_cover_cropped(tmp_path):
    import cv2

    img = np.zeros((100, 50, 3), np.uint8)
    img[:10] = 255  # a white band at the top: kept, since the crop keeps the head
    cv2.imwrite(str(tmp_path / "p.png"), img)
    frame, name = bench_frame(40, 40, str(tmp_path / "p.png"))
    assert frame.shape == (40, 40, 3) and name == "p.png"
    assert frame[0].mean() > 200 and frame[-1].mean() < 50
    with pytest.raises(FileNotFoundError, match="cannot read"):
        bench_frame(40, 40, str(tmp_path / "missing.png"))


def test_synthetic_portrait_stands_in_without_scikit_image(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skimage", None)
    frame, name = bench_frame(160, 90)
    assert frame.shape == (90, 160, 3) and "synthetic" in name


def test_plan_puts_the_peer_first_for_each_size(tmp_path):
    peer = tmp_path / "rvm.onnx"
    peer.write_bytes(b"x")
    cases, notes = plan_cases(_args(size=(320, 240), device="cpu", precision="fp32", peer=str(peer),
                                    backend="torch"))
    assert [(c.backend, c.cra) for c in cases] == [(PEER, None), ("torch", True), ("torch", False)]
    assert notes == [] or all("peer" not in n for n in notes)


def test_plan_all_sizes_and_missing_peer_is_a_note(tmp_path):
    cases, notes = plan_cases(_args(device="cpu", precision="fp32", peer=str(tmp_path / "none.onnx"),
                                    backend="torch", cra="on"))
    assert [(c.width, c.height) for c in cases] == list(bench.SIZES)
    assert any("peer skipped" in n for n in notes)
    cases, notes = plan_cases(_args(device="cpu", precision="fp32", no_peer=True, backend="torch", cra="off"))
    assert all(c.backend == "torch" and c.cra is False for c in cases) and notes == []


def _rec(backend, total, mem, size="1280x720", cra=True, **kw):
    return {"size": size, "width": 1280, "height": 720, "backend": backend, "cra": cra, "device": "cpu",
            "total_ms": total, "min_ms": total * 0.9, "fps": 1000 / total, "peak_mem_mb": mem, "regions": 500,
            "gflops": 9.6, "coarse_ms": total * 0.7, "knn_ms": 1.0, "refine_ms": total * 0.3, **kw}


def test_peer_ratios_are_peer_over_ours_per_size():
    recs = [_rec(PEER, 200.0, 1000.0, cra=None), _rec("torch", 100.0, 500.0),
            _rec("torch", 50.0, 500.0, size="1920x1080"), {"size": "1280x720", "backend": "onnxruntime",
                                                            "error": "boom"}]
    attach_peer_ratios(recs)
    assert recs[1]["speedup_vs_peer"] == 2.0 and recs[1]["mem_vs_peer"] == 0.5
    assert recs[1]["peer_total_ms"] == 200.0
    assert "speedup_vs_peer" not in recs[2]  # no peer measured at that size
    assert "speedup_vs_peer" not in recs[3] and "speedup_vs_peer" not in recs[0]


def test_table_shows_every_case_and_errors():
    recs = [_rec(PEER, 200.0, 1000.0, cra=None, provider="CPUExecutionProvider"),
            _rec("torch", 100.0, 500.0, provider="torch-cpu"),
            {"size": "1280x720", "backend": "onnxruntime", "cra": False, "error": "export failed"}]
    attach_peer_ratios(recs)
    text = format_table(recs)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["size", "backend", "CRA"]
    assert "rvm-peer/cpu" in lines[1] and "torch" in lines[2] and "2.00" in lines[2]
    assert "error: export failed" in lines[3]


def test_one_case_in_process_has_the_tracking_keys():
    rec = bench.measure_case(BenchCase("torch", 256, 224, True, repeats=1, warmup=0, regions="40"))
    assert set(rec) >= REQUIRED
    assert rec["size"] == "256x224" and rec["regions"] == 40 and rec["region_budget"] == 40
    assert rec["total_ms"] > 0 and rec["gflops"] > 0 and rec["peak_mem_mb"] > 0
    assert rec["knn_ms"] >= 0 and rec["coarse_ms"] > 0


def test_cli_json_prints_one_object_per_case(capsys):
    args = _args(size=(224, 224), device="cpu", precision="auto", backend="torch", cra="off", no_peer=True,
                 repeats=1, warmup=0, regions="20", json=True, in_process=True)
    assert bench.run(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert set(rec) >= REQUIRED and rec["cra"] is False and rec["backend"] == "torch"


def test_bad_device_is_a_clear_error():
    with pytest.raises(SystemExit, match="--device must be cpu or cuda"):
        bench.run(_args(device="tpu"))


def test_peer_case_runs_in_a_worker_subprocess():
    path = default_peer_path()
    if path is None:
        pytest.skip("RVM peer not found at ../shared/peers/rvm.onnx")
    ballast = np.ones(1_000_000_000 // 8)  # 1 GB resident in the parent: the worker must not report it
    rec = bench.run_case_subprocess(BenchCase(PEER, 160, 96, None, repeats=1, warmup=0, threads=1,
                                              peer=str(path)), timeout=120)
    del ballast
    assert "error" not in rec, rec
    assert rec["peak_mem_mb"] < 900, rec["peak_mem_mb"]
    assert rec["total_ms"] > 0 and rec["peak_mem_mb"] > 0 and rec["provider"] == "CPUExecutionProvider"
    assert rec["downsample_ratio"] == 1.0


def test_coarse_scale_runs_the_model_on_the_smaller_frame():
    rec = bench.measure_case(BenchCase("torch", 448, 448, False, repeats=1, warmup=0, regions="auto", scale=0.5))
    assert rec["model_input"] == "224x224" and rec["coarse_scale"] == 0.5
    assert rec["region_budget"] == region_budget("auto", 224, 224)
    assert rec["regions"] == rec["region_budget"]
    with pytest.raises(SystemExit, match="coarse-scale"):
        bench.run(_args(device="cpu", coarse_scale=1.5))


def test_saved_json_and_gpu_check_reports_render_as_markdown(tmp_path, capsys):
    lines = tmp_path / "cpu.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in [_rec(PEER, 200.0, 1000.0, cra=None),
                                                        _rec("torch", 100.0, 500.0, provider="torch-cpu")]))
    report = tmp_path / "gpu.json"
    report.write_text(json.dumps({"env": {}, "bench": [_rec("torch", 2.0, 900.0, size="1920x1080",
                                                            provider="torch-cuda (cuda-graph)")]}))
    assert bench.run(_args(from_json=[str(lines), str(report)], markdown=True)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| size | backend | CRA |") and out[1].startswith("|---|")
    assert len(out) == 5
    assert "| torch/cpu | on |" in out[3] and "| 2.00 |" in out[3]  # ratio to the peer recomputed
    assert "torch/cuda (cuda-graph)" in out[4]
