"""ONNX export: each graph agrees with PyTorch, and the ONNX Runtime engine gives PyTorch's mattes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from matting_core.backends.onnx_engine import OnnxMattingEngine  # noqa: E402
from matting_core.backends.onnx_export import ExportManifest, export_onnx  # noqa: E402
from matting_core.backends.ort_session import OrtOptions  # noqa: E402
from matting_core.config import ModelConfig  # noqa: E402
from matting_core.engine import EngineOptions, MattingEngine  # noqa: E402
from matting_core.model import PortraitMattingModel  # noqa: E402

W, H = 248, 232  # not multiples of 16: the graphs must reproduce the model's replicate padding
CPU1 = OrtOptions(providers="cpu", threads=1)


@pytest.fixture(scope="module")
def model() -> PortraitMattingModel:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m = PortraitMattingModel(ModelConfig()).eval()
    with torch.no_grad():  # a non-zero relative-position table, so CRA's bias path is really exercised
        m.refiner.cra.bias.table.normal_(0, 0.5)
    return m


@pytest.fixture(scope="module")
def export_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "dyn"
    export_onnx(model, out, W, H, budget=None)
    return out


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A smooth, portrait-like frame: a bright disc on a gradient, so the coarse net sees structure."""
    yy, xx = np.mgrid[0:H, 0:W]
    disc = ((yy - H * 0.45) ** 2 + (xx - W * 0.5) ** 2) < (0.3 * H) ** 2
    img = np.stack([xx * 255 / W, yy * 255 / H, np.full_like(xx, 90)], -1).astype(np.float32)
    img[disc] = (230, 190, 160)
    return img.astype(np.uint8)


def test_every_graph_agrees_with_pytorch(export_dir):
    manifest = ExportManifest.load(export_dir)
    assert set(manifest.max_abs_diff) == {"coarse.alpha_logits", "coarse.trimap_logits", "coarse.upsampled",
                                          "refine_cra", "refine_nocra"}
    print("max |ONNX - PyTorch|:", manifest.max_abs_diff)
    for name, diff in manifest.max_abs_diff.items():
        assert diff < 1e-4, (name, diff)
    assert (manifest.width, manifest.height, manifest.budget) == (W, H, None)


@pytest.mark.parametrize(("use_cra", "budget"), [(True, None), (True, 45), (False, None), (False, 45)])
def test_onnx_engine_mattes_like_pytorch(model, export_dir, frame, use_cra, budget):
    torch_engine = MattingEngine(model)
    torch_engine.use_cra, torch_engine.region_budget = use_cra, budget
    onnx_engine = OnnxMattingEngine(export_dir, CPU1, use_cra=use_cra, region_budget=budget)
    want = torch_engine.matte_detailed(frame)
    got = onnx_engine.matte_detailed(frame)
    assert len(want.regions) > 0
    np.testing.assert_array_equal(got.regions, want.regions)
    np.testing.assert_array_equal(got.trimap, want.trimap)
    assert got.alpha.shape == (H, W) and got.alpha.dtype == np.float32
    diff = float(np.abs(got.alpha - want.alpha).max())
    print(f"cra={use_cra} budget={budget}: {len(got.regions)} regions, max |alpha diff| {diff:.2e}")
    assert diff < 1e-4
    assert np.abs(got.coarse_alpha - want.coarse_alpha).max() < 1e-4
    assert set(got.timings_ms) == {"coarse", "knn", "refine", "total"}


def _onnx_like_pytorch(model, export_dir, frame, trimap_class: int, **snap):
    """Both engines with the same clearing / filling ``snap`` options: the ONNX result (it must equal PyTorch's)
    and the pixels of the cells PyTorch's trimap puts in ``trimap_class`` (there must be some)."""
    want = MattingEngine(model, EngineOptions(**snap)).matte_detailed(frame)
    got = OnnxMattingEngine(export_dir, CPU1, **snap).matte_detailed(frame)
    assert np.abs(got.alpha - want.alpha).max() < 1e-4
    cells = (want.trimap == trimap_class).repeat(8, 0).repeat(8, 1)[:H, :W]
    assert cells.any()  # the random model has cells of that class, so the rule is exercised
    return got, cells


@pytest.mark.parametrize("clear", [0.0, 0.99])
def test_onnx_engine_clears_background_like_pytorch(model, export_dir, frame, clear):
    got, cleared = _onnx_like_pytorch(model, export_dir, frame, 0, clear_background=clear)
    in_bg = got.alpha[cleared]
    if clear:  # background cells hold 0 or values at or above the threshold, nothing in between
        assert np.all((in_bg == 0) | (in_bg >= clear)) and (in_bg == 0).mean() > 0.5
    else:  # the plain paste leaves the coarse net's own (sigmoid, never exactly 0) values
        assert (in_bg == 0).mean() < 0.01


@pytest.mark.parametrize("drop", [0.0, 0.99])
def test_onnx_engine_drops_islands_like_pytorch(model, export_dir, frame, drop, monkeypatch):
    _onnx_like_pytorch(model, export_dir, frame, 2, drop_islands=drop)
    import matting_core.backends.onnx_engine as onnx_engine

    seen = []
    real = onnx_engine.drop_unsure_islands_numpy
    monkeypatch.setattr(onnx_engine, "drop_unsure_islands_numpy",
                        lambda a, t, r: seen.append((a.shape, t)) or real(a, t, r))
    OnnxMattingEngine(export_dir, CPU1, drop_islands=drop).matte(frame)
    assert seen == [((1, 1, H, W), drop)]  # applied once, to the frame's own size


@pytest.mark.parametrize("fill", [1.0, 0.6])
def test_onnx_engine_fills_foreground_like_pytorch(model, export_dir, frame, fill):
    got, filled = _onnx_like_pytorch(model, export_dir, frame, 2, fill_foreground=fill)
    plain = OnnxMattingEngine(export_dir, CPU1, fill_foreground=1.0).matte(frame)
    np.testing.assert_allclose(got.alpha[filled], np.minimum(plain[filled] / fill, 1.0), atol=1e-6)
    np.testing.assert_array_equal(got.alpha[~filled], plain[~filled])
    if fill < 1:
        assert np.abs(got.alpha - plain).max() > 0.05  # the stretch visibly acted


def test_cra_changes_the_onnx_result(export_dir, frame):
    """Guards against the two refinement graphs being the same graph."""
    on = OnnxMattingEngine(export_dir, CPU1, use_cra=True, region_budget=45).matte(frame)
    off = OnnxMattingEngine(export_dir, CPU1, use_cra=False, region_budget=45).matte(frame)
    assert np.abs(on - off).max() > 1e-4


def test_static_budget_export_has_fixed_shapes_and_pins_the_budget(model, export_dir, frame, tmp_path):
    import onnx

    out = tmp_path / "static"
    manifest = export_onnx(model, out, W, H, budget=45, coarse_from=export_dir)
    assert manifest.budget == 45 and max(manifest.max_abs_diff.values()) < 1e-4
    dims = onnx.load(out / manifest.files["refine_cra"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [45, 4, 8, 8]
    engine = OnnxMattingEngine(out, CPU1)
    assert engine.region_budget == 45
    with pytest.raises(ValueError, match="static region budget of 45"):
        engine.region_budget = 60
    want = MattingEngine(model)
    want.region_budget = 45
    assert np.abs(engine.matte(frame) - want.matte(frame)).max() < 1e-4


def copy_without(export_dir: Path, dest: Path, *keys: str) -> Path:
    """A copy of an export whose manifest lacks ``keys`` (an export made by an older version)."""
    shutil.copytree(export_dir, dest)
    data = json.loads((dest / "manifest.json").read_text())
    for key in keys:
        data.pop(key)
    (dest / "manifest.json").write_text(json.dumps(data))
    return dest


def test_wrong_frame_size_is_a_clear_error(export_dir, frame):
    engine = OnnxMattingEngine(export_dir, CPU1)
    with pytest.raises(ValueError, match=f"export is for {W}x{H}"):
        engine.matte(frame[:200])


def test_an_export_of_an_older_format_asks_for_a_new_export(export_dir, tmp_path):
    old = copy_without(export_dir, tmp_path / "old", "format")
    with pytest.raises(ValueError, match="format 1.*export-onnx"):
        OnnxMattingEngine(old, CPU1)


def test_missing_export_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="mattecam export-onnx"):
        OnnxMattingEngine(tmp_path)


def test_coarse_from_a_different_size_is_refused(model, export_dir, tmp_path):
    with pytest.raises(ValueError, match=f"is a {W}x{H} export"):
        export_onnx(model, tmp_path / "x", W + 16, H, budget=10, coarse_from=export_dir)


def test_onnx_engine_does_not_import_torch():
    """Without torch the ONNX Runtime backend stays ~500 MB lighter (what keeps 4K under the peer's memory)."""
    import subprocess
    import sys

    code = "import sys, matting_core.backends.onnx_engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ coarse input scale (tiny model: fast exports)
SCALE = 0.5


@pytest.fixture(scope="module")
def tiny(tiny_cfg: ModelConfig) -> PortraitMattingModel:
    torch.manual_seed(0)
    m = PortraitMattingModel(tiny_cfg).eval()
    with torch.no_grad():
        m.refiner.cra.bias.table.normal_(0, 0.5)
    return m


@pytest.fixture(scope="module")
def scaled_dir(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "scaled"
    export_onnx(tiny, out, W, H, budget=None, coarse_scale=SCALE)
    return out


@pytest.fixture
def area_downscale(monkeypatch):
    """Make the PyTorch model shrink the frame with cv2 INTER_AREA, as the ONNX engine does, so everything
    else (graph, crop, regrid, upsampling, regions, refinement) can be compared exactly."""
    import cv2
    import torch.nn.functional as F

    real = F.interpolate

    def interpolate(x, *args, antialias=False, **kwargs):
        out = real(x, *args, antialias=antialias, **kwargs)
        if not antialias:
            return out
        img = (x[0].permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()
        small = cv2.resize(img, (out.shape[-1], out.shape[-2]), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0

    monkeypatch.setattr(F, "interpolate", interpolate)


def test_scaled_export_records_the_model_geometry(scaled_dir):
    m = ExportManifest.load(scaled_dir)
    # 248x232 pads to 256x240; half of that is 128x120, rounded to whole 16 px patches 128x128, whose 1/8 grid
    # is 16x16 cells (regridded to 32x30)
    assert (m.coarse_scale, m.padded_width, m.padded_height) == (SCALE, 256, 240)
    assert (m.coarse_width, m.coarse_height, m.coarse_cells) == (128, 128, (16, 16))
    assert set(m.max_abs_diff) == {"coarse.alpha_logits", "coarse.trimap_logits", "refine_cra", "refine_nocra"}
    assert max(m.max_abs_diff.values()) < 1e-4
    import onnx

    dims = onnx.load(scaled_dir / m.files["coarse"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 128, 128, 3]


@pytest.mark.parametrize(("use_cra", "budget"), [(True, None), (False, 45)])
def test_scaled_onnx_engine_equals_pytorch_given_the_same_downscale(tiny, scaled_dir, frame, area_downscale,
                                                                    use_cra, budget):
    want = MattingEngine(tiny, EngineOptions(coarse_scale=SCALE, use_cra=use_cra, region_budget=budget))
    got = OnnxMattingEngine(scaled_dir, CPU1, use_cra=use_cra, region_budget=budget).matte_detailed(frame)
    ref = want.matte_detailed(frame)
    assert got.trimap.shape == ref.trimap.shape == (30, 32)
    np.testing.assert_array_equal(got.trimap, ref.trimap)
    np.testing.assert_array_equal(got.regions, ref.regions)
    assert len(got.regions) > 0
    assert np.abs(got.coarse_alpha - ref.coarse_alpha).max() < 1e-4
    assert np.abs(got.alpha - ref.alpha).max() < 1e-4
    full = MattingEngine(tiny, EngineOptions(coarse_scale=1.0, use_cra=use_cra, region_budget=budget))
    assert np.abs(full.matte(frame) - got.alpha).max() > 1e-2  # the scale really changes the result


def test_scaled_onnx_engine_is_close_to_the_antialiased_model(tiny, scaled_dir, frame):
    """Against ``model(x, coarse_scale=0.5)`` itself: only the downscale filter differs (box vs triangle),
    which moves the coarse logits slightly and may flip a cell or two near a trimap boundary."""
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        out = tiny(x, coarse_scale=SCALE)
    # the model's own forward is the paper's plain paste: neither clearing nor filling
    got = OnnxMattingEngine(scaled_dir, CPU1, clear_background=0.0, fill_foreground=1.0).matte_detailed(frame)
    want_trimap = out.trimap_logits[0].argmax(0).numpy()
    coarse = torch.sigmoid(out.coarse_alpha_logits[0, 0]).numpy()
    agree = float((got.trimap == want_trimap).mean())
    cells = {tuple(c) for c in got.regions.tolist()}
    want_cells = {tuple(c) for c in out.regions.coords.tolist()}
    iou = len(cells & want_cells) / len(cells | want_cells)
    diff = np.abs(got.alpha - out.alpha[0, 0].numpy())
    print(f"trimap agreement {agree:.4f}, region IoU {iou:.4f}, coarse alpha max {np.abs(got.coarse_alpha - coarse).max():.2e}, "
          f"alpha max {diff.max():.3f} mean {diff.mean():.2e}")
    assert agree >= 0.98 and iou >= 0.98
    assert np.abs(got.coarse_alpha - coarse).max() < 1e-2
    assert diff.mean() < 2e-3 and diff.max() < 0.15


def test_a_manifest_without_the_coarse_scale_is_a_full_frame_export(model, export_dir, frame, tmp_path):
    assert json.loads((export_dir / "manifest.json").read_text())["coarse_scale"] == 1.0
    old = copy_without(export_dir, tmp_path / "old", "coarse_scale", "coarse_width", "coarse_height",
                       "coarse_cells", "padded_width", "padded_height")
    engine = OnnxMattingEngine(old, CPU1, region_budget=45)
    assert engine.coarse_scale == 1.0 and not engine.manifest.scaled
    want = MattingEngine(model, EngineOptions(coarse_scale=1.0, region_budget=45))
    assert np.abs(engine.matte(frame) - want.matte(frame)).max() < 1e-4


def test_a_scaled_manifest_without_its_sizes_is_refused(scaled_dir, tmp_path):
    bad = copy_without(scaled_dir, tmp_path / "bad", "coarse_cells")
    with pytest.raises(ValueError, match="coarse scale 0.5 but not the coarse sizes"):
        OnnxMattingEngine(bad, CPU1)


def test_coarse_from_an_export_of_another_scale_is_refused(tiny, scaled_dir, tmp_path):
    with pytest.raises(ValueError, match="has coarse scale 0.5, not 1"):
        export_onnx(tiny, tmp_path / "x", W, H, budget=10, coarse_from=scaled_dir)


@pytest.mark.parametrize("scale", [0.0, 1.5])
def test_a_coarse_scale_out_of_range_is_refused(tiny, tmp_path, scale):
    with pytest.raises(ValueError, match="coarse scale must be in"):
        export_onnx(tiny, tmp_path / "x", W, H, coarse_scale=scale)


@pytest.fixture(scope="module")
def tiny_ckpt(tiny, tmp_path_factory):
    """The tiny model as a checkpoint trained at 116 px: for 232 px tall frames the engine's rule gives 0.5."""
    from matting_core.checkpoint import save_checkpoint

    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny, ckpt, extra={"size": 116})
    assert MattingEngine.load(ckpt).effective_coarse_scale(H, W) == 0.5
    return ckpt


def test_export_command_picks_the_engines_automatic_coarse_scale(tiny_ckpt, tmp_path, capsys):
    from matting_core.cli import main

    ckpt = tiny_ckpt
    out = tmp_path / "auto"
    assert main(["export-onnx", "--model", str(ckpt), "--size", f"{W}x{H}", "--out", str(out)]) == 0
    assert "coarse pass on 128x128 (scale 0.5, automatic)" in capsys.readouterr().out
    m = ExportManifest.load(out)
    assert (m.coarse_scale, m.coarse_width, m.coarse_height) == (0.5, 128, 128)


@pytest.mark.parametrize("value", ["0.05", "1.5"])
def test_export_command_refuses_a_coarse_scale_out_of_range(tmp_path, capsys, value):
    from matting_core.cli import main

    assert main(["export-onnx", "--size", f"{W}x{H}", "--out", str(tmp_path / "x"), "--coarse-scale", value]) == 2
    assert "--coarse-scale" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bench_onnx_rows_measure_the_full_frame_coarse_pass(tiny_ckpt, tmp_path):
    """The bench's exports stay full-frame (comparable with its PyTorch rows) even where the automatic
    scale of ``export-onnx`` would shrink the coarse input, and each record says so."""
    from dataclasses import replace

    from matting_core.bench import BenchCase, ensure_export, measure_case

    case = BenchCase("onnxruntime", W, H, True, model=str(tiny_ckpt), repeats=1, warmup=0, threads=1)
    out = ensure_export(case, tmp_path)
    assert ExportManifest.load(out).coarse_scale == 1.0
    rec = measure_case(replace(case, onnx_dir=str(out)))
    assert rec["onnx_coarse_scale"] == 1.0 and rec["coarse_scale"] == 1.0 and rec["total_ms"] > 0
