"""Preview hand-off (newest frame only, no backlog) and the preview views (mirror, alpha, trimap overlay)."""

from __future__ import annotations

import cv2
import numpy as np

from app.frames import FrameResult, PreviewFrame
from app.preview_views import REFINED_TINT, UNKNOWN_TINT, render_view, stats_lines
from app.sinks import PreviewSink
from matting_core.adaptive import QualitySetting


def result(index: int, w: int = 64, h: int = 48) -> FrameResult:
    frame = np.full((h, w, 3), index % 256, np.uint8)
    return FrameResult(index, frame, np.zeros((h, w), np.float32), frame.copy(), timings_ms={"matte": 5.0})


def test_preview_sink_notifies_once_and_hands_over_only_the_newest_frame():
    notified = []
    sink = PreviewSink(lambda: notified.append(1))
    for i in range(5):  # the GUI is busy: five frames arrive before it looks
        sink.send(result(i))
    assert len(notified) == 1
    preview = sink.take()
    assert preview.index == 4
    assert sink.take() is None
    sink.send(result(5))
    assert len(notified) == 2  # re-armed after take()


def test_preview_sink_shrinks_big_frames_for_the_screen():
    sink = PreviewSink(lambda: None, max_width=320)
    sink.send(result(1, w=1280, h=720))
    preview = sink.take()
    assert preview.composite.shape == (180, 320, 3) and preview.alpha.shape == (180, 320)
    assert preview.full_size == (1280, 720)


def preview_frame(trimap=None, regions=None) -> PreviewFrame:
    h, w = 32, 48
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2] = (10, 20, 30)  # left half differs from right half: mirroring is visible
    composite = frame.copy()
    composite[:] = (0, 255, 0)
    alpha = np.zeros((h, w), np.float32)
    alpha[:, w // 2 :] = 1.0
    return PreviewFrame(composite, frame, alpha, trimap, regions, (w, h), (w, h), {}, 0.0, 0, "", 0)


def test_views_pick_the_right_picture_and_mirror_flips_it():
    p = preview_frame()
    assert np.array_equal(render_view(p, "output", mirror=False), p.composite)
    assert np.array_equal(render_view(p, "original", mirror=False), p.frame)
    assert np.array_equal(render_view(p, "original", mirror=True), cv2.flip(p.frame, 1))
    alpha_view = render_view(p, "alpha", mirror=False)
    assert alpha_view[0, 0].tolist() == [0, 0, 0] and alpha_view[0, -1].tolist() == [255, 255, 255]


def test_trimap_view_tints_uncertain_and_refined_cells():
    # Frame 48x32 = trimap grid 6x4 of 8x8 cells: column 0 background, 1-2 unknown, rest foreground.
    trimap = np.full((4, 6), 2, np.uint8)
    trimap[:, 0] = 0
    trimap[:, 1:3] = 1
    regions = np.array([[0, 2], [1, 2]], np.int32)  # two refined cells in column 2
    p = preview_frame(trimap, regions)
    p.frame[:] = 200
    out = render_view(p, "trimap", mirror=False).astype(int)
    assert out[4, 4].max() < 100  # background dimmed
    unknown = np.array(UNKNOWN_TINT)
    refined = np.array(REFINED_TINT)
    assert np.abs(out[20, 12] - (0.45 * 200 + 0.55 * unknown)).max() <= 1  # unknown cell (row 2, col 1)
    assert np.abs(out[4, 20] - (0.45 * (0.45 * 200 + 0.55 * unknown) + 0.55 * refined)).max() <= 2  # refined
    assert out[20, 40].tolist() == [200, 200, 200]  # foreground untouched


def test_stats_lines_show_fps_and_stage_times():
    p = preview_frame()
    p.fps, p.timings_ms = 12.5, {"matte": 80.0, "coarse": 40.0, "knn": 1.0, "refine": 30.0, "composite": 9.0,
                                 "latency": 95.0}
    text = "\n".join(stats_lines(p, use_cra=False))
    for part in ("12.5 FPS", "CRA off", "matte 80 ms", "coarse 40", "refine 30", "composite 9", "latency 95"):
        assert part in text


def test_stats_lines_show_the_adaptive_quality_level_only_when_it_is_on():
    p = preview_frame()
    assert not any("adaptive" in line for line in stats_lines(p, use_cra=True))
    p.quality = QualitySetting(region_budget=300, coarse_scale=0.75)
    assert "adaptive 0.75x, 300 regions" in stats_lines(p, use_cra=True)


def test_preview_sink_carries_the_quality_level():
    sink = PreviewSink(lambda: None)
    r = result(1)
    r.quality = QualitySetting(64, 0.5)
    sink.send(r)
    assert sink.take().quality == QualitySetting(64, 0.5)
