"""The window, offscreen: it builds, shows composites, applies changes live, survives every fault, closes fast."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest
from app_doubles import FakeEngine, read_video_frames, write_split_picture, write_video

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt

from app.assets import bundled_backgrounds
from app.backgrounds import ImageBackground, aspect_fill
from app.engine_loader import LoadedEngine
from app.settings import AppSettings, default_settings_path, load_settings
from app.sinks import CallbackSink
from app.sources import CameraEntry, SourceError, SourceInfo, SourceLost, make_source
from app.window import MainWindow


class Collector:
    def __init__(self) -> None:
        self.results = []
        self.lock = threading.Lock()

    def __call__(self, result) -> None:
        with self.lock:
            self.results.append(result)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def last(self):
        with self.lock:
            return self.results[-1]


@pytest.fixture
def fake_engine():
    return FakeEngine()


def make_window(qtbot, settings=None, engine=None, source_factory=make_source, messages=(), cameras=()):
    engine = engine if engine is not None else FakeEngine()
    window = MainWindow(
        settings or AppSettings(source_kind="demo"),
        engine_factory=lambda request: LoadedEngine(engine, [], "fake engine"),
        source_factory=source_factory,
        camera_lister=lambda: list(cameras),
        startup_messages=messages,
    )
    qtbot.addWidget(window)
    window.show()
    collector = Collector()
    window.pipeline.add_sink(CallbackSink("test", collector))
    qtbot.waitUntil(lambda: window.engine is engine, timeout=20000)
    return window, collector, engine


def wait_frames(qtbot, collector, n=2, timeout=20000):
    start = collector.count()
    qtbot.waitUntil(lambda: collector.count() >= start + n, timeout=timeout)


def test_window_builds_and_shows_composited_frames(qtbot):
    window, collector, engine = make_window(qtbot)
    wait_frames(qtbot, collector, 2)
    shown = window.preview.frames_shown
    qtbot.waitUntil(lambda: window.preview.frames_shown >= shown + 2, timeout=20000)
    assert not window._last_preview.warning  # a real composite, not the "loading" placeholder
    assert window.controls.gallery.count() == len(bundled_backgrounds())
    assert "Demo clip" in window.controls.source_combo.currentText()
    assert "640x480" in window.controls.source_info_label.text()
    assert engine.calls >= 2
    assert window.controls.engine_label.text() == "fake engine"
    window.close()


def test_toggling_cra_reaches_the_engine(qtbot):
    window, collector, engine = make_window(qtbot)
    wait_frames(qtbot, collector)
    assert engine.use_cra is True
    window.controls.cra_check.setChecked(False)
    qtbot.waitUntil(lambda: engine.use_cra is False, timeout=15000)
    wait_frames(qtbot, collector)
    assert engine.cra_seen[-1] is False
    assert window.settings.use_cra is False
    qtbot.keyClick(window, Qt.Key.Key_C)  # hotkey turns it back on
    qtbot.waitUntil(lambda: engine.use_cra is True, timeout=15000)
    assert window.controls.cra_check.isChecked()
    window.close()


def test_picking_a_background_changes_the_composite(qtbot, tmp_path):
    window, collector, _engine = make_window(qtbot)
    wait_frames(qtbot, collector)
    path = str(write_split_picture(tmp_path / "split.png"))
    assert window.add_background_file(path)
    assert window.controls.gallery.item_for(path) is not None
    qtbot.waitUntil(lambda: isinstance(window.background, ImageBackground)
                    and window.background.description == "split.png", timeout=15000)
    wait_frames(qtbot, collector)
    result = collector.last()
    expected = aspect_fill(cv2.imread(path), (result.frame.shape[1], result.frame.shape[0]))
    zero = result.alpha == 0
    assert zero.sum() > 1000
    assert np.array_equal(result.composite[zero], expected[zero])
    assert window.settings.background_path == path and path in window.settings.user_backgrounds
    # Clicking a bundled picture in the gallery switches again.
    bundled = str(bundled_backgrounds()[0])
    window.controls.gallery.picked.emit(bundled)
    qtbot.waitUntil(lambda: window.background.description == bundled_backgrounds()[0].name, timeout=15000)
    window.close()


def test_blur_colour_and_none_modes_apply_live(qtbot):
    window, collector, _engine = make_window(qtbot)
    window.set_color("#ff0000")
    qtbot.waitUntil(lambda: window.background.description == "#ff0000", timeout=15000)
    wait_frames(qtbot, collector)
    result = collector.last()
    assert tuple(result.composite[0, 0]) == (0, 0, 255)
    window.controls.mode_combo.setCurrentIndex(window.controls.mode_combo.findData("blur"))
    qtbot.waitUntil(lambda: window.background.description.startswith("blur"), timeout=15000)
    window.controls.blur_slider.setValue(80)
    qtbot.waitUntil(lambda: window.background.description == "blur 80", timeout=15000)
    window.controls.mode_combo.setCurrentIndex(window.controls.mode_combo.findData("none"))
    qtbot.waitUntil(lambda: window.background.description == "none", timeout=15000)
    wait_frames(qtbot, collector)
    assert np.array_equal(collector.last().composite, collector.last().frame)
    window.close()


def test_unreadable_background_keeps_the_previous_one(qtbot, tmp_path):
    window, collector, _engine = make_window(qtbot)
    wait_frames(qtbot, collector)
    before = window.background
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\x00not a jpeg")
    assert not window.add_background_file(str(broken))
    assert not window.pick_background(str(tmp_path / "missing.png"))
    wait_frames(qtbot, collector)
    assert window.background is before
    assert "Keeping the current background" in window.notice.text
    assert window.controls.gallery.item_for(str(broken)) is None
    window.close()


def test_video_background(qtbot, tmp_path):
    window, _collector, _engine = make_window(qtbot)
    clip = write_video(tmp_path / "bg.mp4", n=5)
    assert window.set_video_background(str(clip))
    qtbot.waitUntil(lambda: window.background.description == "bg.mp4", timeout=15000)
    assert window.settings.background_mode == "video"
    window.close()


def test_settings_persist_across_runs(qtbot):
    window, _collector, _engine = make_window(qtbot)
    window.controls.cra_check.setChecked(False)
    window.controls.smoothing_slider.setValue(50)
    window.view_combo.setCurrentIndex(window.view_combo.findData("alpha"))
    window.close()
    saved, messages = load_settings()
    assert messages == []
    assert (saved.use_cra, saved.temporal_smoothing, saved.preview_view) == (False, 0.5, "alpha")
    again, _, engine2 = make_window(qtbot, settings=saved)
    assert not again.controls.cra_check.isChecked() and again.view_combo.currentData() == "alpha"
    qtbot.waitUntil(lambda: bool(engine2.cra_seen) and engine2.cra_seen[-1] is False, timeout=20000)
    again.close()


def test_corrupt_settings_file_starts_with_defaults_and_says_so(qtbot):
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    settings, messages = load_settings()
    window, collector, _ = make_window(qtbot, settings=settings.with_changes(source_kind="demo"), messages=messages)
    assert "using defaults" in window.notice.text
    wait_frames(qtbot, collector)
    window.close()
    assert json.loads(path.read_text())["version"] == 1  # rewritten as valid JSON on close


def test_preview_views_and_mirror_affect_only_the_preview(qtbot, fake_vcam):
    window, collector, _engine = make_window(qtbot, settings=AppSettings(
        source_kind="demo", mirror_preview=True, virtual_camera_backend="fake"))
    window.set_virtual_camera(True)
    qtbot.waitUntil(lambda: len(fake_vcam.frames) >= 2, timeout=20000)
    qtbot.waitUntil(lambda: window._last_preview is not None, timeout=20000)
    preview = window._last_preview
    shown = window.preview._array
    assert np.array_equal(shown, cv2.flip(preview.composite, 1))  # preview is mirrored ...
    sent = fake_vcam.frames[-1].reshape(480, 640, 3)
    result = collector.last()
    assert not np.array_equal(sent, cv2.flip(sent, 1))
    assert sent.shape == result.composite.shape  # ... the virtual camera gets the unmirrored output
    for key in ("1", "2", "3", "4"):
        qtbot.keyClick(window, getattr(Qt.Key, f"Key_{key}"))
        assert window.view_combo.currentIndex() == int(key) - 1
    assert window.settings.preview_view == "trimap"
    window.close()


def test_virtual_camera_start_stop_through_pyvirtualcam(qtbot, fake_vcam):
    window, _collector, _engine = make_window(qtbot, settings=AppSettings(source_kind="demo",
                                                                        virtual_camera_backend="fake"))
    window.controls.vcam_button.click()
    qtbot.waitUntil(lambda: len(fake_vcam.frames) >= 3, timeout=20000)
    assert fake_vcam.opened[0]["width"] == 640 and fake_vcam.opened[0]["height"] == 480
    qtbot.waitUntil(lambda: window.controls.vcam_status.text().startswith("on:"), timeout=15000)
    assert window.controls.vcam_button.text() == "Stop virtual camera"
    qtbot.keyClick(window, Qt.Key.Key_V)  # hotkey stops it
    qtbot.waitUntil(lambda: fake_vcam.closed == 1, timeout=15000)
    assert window.controls.vcam_status.text() == "stopped"
    window.close()


def test_missing_virtual_camera_device_is_explained_and_preview_keeps_running(qtbot, fake_vcam):
    window, _collector, _engine = make_window(qtbot, settings=AppSettings(source_kind="demo",
                                                                        virtual_camera_backend="missing"))
    window.controls.vcam_button.click()
    qtbot.waitUntil(lambda: "v4l2loopback" in window.notice.text, timeout=20000)
    assert "exclusive_caps=1" in window.notice.text and "preview keeps running" in window.notice.text
    assert window.controls.vcam_status.text() == "unavailable"
    assert not window.controls.vcam_button.isChecked()
    shown = window.preview.frames_shown
    qtbot.waitUntil(lambda: window.preview.frames_shown > shown + 2, timeout=20000)
    window.close()


def test_no_camera_offers_the_demo_clip(qtbot, tmp_path):
    settings = AppSettings(source_kind="camera", camera=str(tmp_path / "video7"))  # no such device
    window, collector, _engine = make_window(qtbot, settings=settings)
    qtbot.waitUntil(lambda: "No camera found" in window.notice.text, timeout=20000)
    assert window.notice.action_button.isVisible()
    assert window.notice.action_button.text() == "Use the demo clip"
    assert "No camera found" in window.preview._placeholder and not window.preview.has_frame
    assert collector.count() == 0
    window.notice.action_button.click()
    wait_frames(qtbot, collector, 3)
    assert window.settings.source_kind == "demo"
    assert not window.notice.isVisible()
    window.close()


def test_busy_camera_is_reported_and_the_window_stays_up(qtbot):
    def busy(spec):
        class Busy:
            def open(self):
                raise SourceError("camera 0 opened but delivers no frames: it is probably in use by another "
                                  "application", reason="busy")

            def close(self):
                pass

        return Busy() if spec.kind == "camera" else make_source(spec)

    window, collector, _engine = make_window(qtbot, settings=AppSettings(source_kind="camera", camera="0"),
                                            source_factory=busy, cameras=[CameraEntry("cam", 0)])
    qtbot.waitUntil(lambda: "in use by another application" in window.notice.text, timeout=20000)
    assert window.isVisible()
    window.use_demo_clip()
    wait_frames(qtbot, collector, 2)
    window.close()


def test_camera_unplugged_mid_stream_reconnects(qtbot):
    state = {"opens": 0, "reads": 0}

    class FlakyCamera:
        def open(self):
            state["opens"] += 1
            return SourceInfo("flaky camera", 64, 48, 30.0, live=True)

        def read(self):
            state["reads"] += 1
            time.sleep(0.01)
            if state["opens"] == 1 and state["reads"] > 5:
                raise SourceLost("camera 0 stopped delivering frames (unplugged?)")
            return np.full((48, 64, 3), 90, np.uint8)

        def close(self):
            pass

    window, collector, _engine = make_window(qtbot, settings=AppSettings(source_kind="camera"),
                                            source_factory=lambda spec: FlakyCamera(),
                                            cameras=[CameraEntry("cam", 0)])
    qtbot.waitUntil(lambda: state["opens"] >= 2, timeout=20000)
    n = collector.count()
    qtbot.waitUntil(lambda: collector.count() > n + 3, timeout=20000)  # frames flow again after the reconnect
    assert window.isVisible()
    window.close()


def test_gpu_requested_and_model_file_missing_fall_back_with_messages(qtbot, tmp_path):
    """The real engine (random weights, CPU) end to end: fallbacks are reported and frames are composited."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this test needs a machine without a GPU")
    torch.set_num_threads(1)
    corrupt = tmp_path / "model.safetensors"
    corrupt.write_bytes(b"definitely not safetensors")
    clip = write_video(tmp_path / "small.mp4", n=4, size=(96, 64))
    settings = AppSettings(source_kind="video", source_path=str(clip), device="cuda", model_path=str(corrupt))
    window = MainWindow(settings, camera_lister=list)  # the real load_engine
    qtbot.addWidget(window)
    window.show()
    collector = Collector()
    window.pipeline.add_sink(CallbackSink("test", collector))
    qtbot.waitUntil(lambda: window.engine_info is not None, timeout=60000)
    text = window.notice.text
    assert "GPU requested" in text and "CPU" in text
    assert "model.safetensors cannot be loaded" in text
    qtbot.waitUntil(lambda: collector.count() >= 1 and not collector.last().warning, timeout=30000)
    result = collector.last()
    assert result.composite.shape == (64, 96, 3)
    assert {"coarse", "refine"} <= set(result.timings_ms)
    assert window.engine.use_cra is True
    window.controls.cra_check.setChecked(False)
    qtbot.waitUntil(lambda: window.engine.use_cra is False, timeout=20000)
    window.close()


def test_model_that_fails_to_start_is_reported_and_the_window_stays_up(qtbot):
    def broken(request):
        raise RuntimeError("torch is not installed")

    window = MainWindow(AppSettings(source_kind="demo"), engine_factory=broken, camera_lister=list)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: "could not be started" in window.notice.text, timeout=20000)
    qtbot.waitUntil(lambda: window.preview.frames_shown >= 1, timeout=20000)
    assert window.controls.engine_label.text() == "no model"
    window.close()


def test_device_change_reloads_the_engine_without_a_restart(qtbot):
    engines = []

    def factory(request):
        engine = FakeEngine()
        engines.append((request, engine))
        return LoadedEngine(engine, [], f"fake on {request.device}")

    window = MainWindow(AppSettings(source_kind="demo"), engine_factory=factory, camera_lister=list)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: len(engines) == 1 and window.engine is engines[0][1], timeout=20000)
    window.controls.device_combo.setCurrentIndex(window.controls.device_combo.findData("cuda"))
    qtbot.waitUntil(lambda: len(engines) == 2 and window.engine is engines[1][1], timeout=20000)
    assert engines[1][0].device == "cuda" and window.controls.engine_label.text() == "fake on cuda"
    window.close()


def test_closing_the_window_stops_everything_within_a_second(qtbot, fake_vcam):
    released = []

    class TrackedSource:
        def __init__(self, spec):
            self.inner = make_source(spec)

        def open(self):
            return self.inner.open()

        def read(self):
            return self.inner.read()

        def close(self):
            released.append(True)
            self.inner.close()

    window, _collector, engine = make_window(qtbot, source_factory=TrackedSource, settings=AppSettings(
        source_kind="demo", virtual_camera_backend="fake"))
    engine.delay_s = 0.15  # a slow model is mid-frame when the window closes
    window.set_virtual_camera(True)
    qtbot.waitUntil(lambda: len(fake_vcam.frames) >= 1, timeout=20000)
    t0 = time.monotonic()
    window.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0
    assert released and fake_vcam.closed == 1
    assert not any(t.name.startswith("mattecam-") for t in threading.enumerate())


def test_recording_from_the_window_writes_a_playable_file(qtbot, tmp_path):
    window, collector, _ = make_window(qtbot, settings=AppSettings(source_kind="demo", record_dir=str(tmp_path)))
    wait_frames(qtbot, collector)
    qtbot.keyClick(window, Qt.Key.Key_R)  # hotkey starts recording
    assert window.controls.record_button.isChecked() and "recording to" in window.controls.record_status.text()
    wait_frames(qtbot, collector, 4)
    recorder = window.recorder
    qtbot.waitUntil(lambda: recorder.frames_written >= 3, timeout=20000)
    window.controls.record_button.click()
    assert not window.controls.record_button.isChecked()
    qtbot.waitUntil(lambda: recorder.closed, timeout=20000)  # the worker finishes the file between frames
    files = list(tmp_path.glob("mattecam-*.mp4"))
    assert len(files) == 1
    frames = read_video_frames(files[0])
    assert len(frames) >= 3, f"{recorder.frames_written} frames written, {len(frames)} readable"
    assert frames[0].shape == (480, 640, 3)
    window.close()



def test_target_fps_combo_reaches_the_pipeline_and_is_saved(qtbot):
    window, collector, engine = make_window(qtbot)
    wait_frames(qtbot, collector)
    assert window.pipeline.processor.adaptive is None and engine.budgets_seen[-1] is None
    combo = window.controls.target_fps_combo
    assert combo.currentData() == 0 and combo.currentText().startswith("Off")
    combo.setCurrentIndex(combo.findData(24))
    qtbot.waitUntil(lambda: window.pipeline.processor.target_fps == 24, timeout=15000)
    wait_frames(qtbot, collector)
    assert engine.budgets_seen[-1] is not None  # adaptive quality now sets the budget (its level: real speed)
    assert collector.last().quality is not None and collector.last().alpha.shape == (480, 640)
    qtbot.waitUntil(lambda: window._last_preview is not None and window._last_preview.quality is not None,
                    timeout=15000)
    qtbot.waitUntil(lambda: any(line.startswith("adaptive ") and line.endswith(" regions")
                                for line in window.preview._lines), timeout=15000)
    assert window.settings.target_fps == 24
    window.close()
    saved, _ = load_settings()
    assert saved.target_fps == 24
    again, collector2, engine2 = make_window(qtbot, settings=saved)
    assert again.controls.target_fps_combo.currentData() == 24 and again.pipeline.processor.target_fps == 24
    again.controls.target_fps_combo.setCurrentIndex(0)  # Off: full quality again
    qtbot.waitUntil(lambda: again.pipeline.processor.adaptive is None, timeout=15000)
    wait_frames(qtbot, collector2)
    assert engine2.budgets_seen[-1] is None and collector2.last().quality is None
    assert again.settings.target_fps == 0
    again.close()
