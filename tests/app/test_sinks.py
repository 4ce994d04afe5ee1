"""Sinks: the virtual camera through pyvirtualcam's own API (fake backend), the recorder, their failures."""

from __future__ import annotations

import glob
import sys

import cv2
import numpy as np
import pytest
from app_doubles import FakeEngine, read_video_frames, wait_until

from app.backgrounds import ColorBackground
from app.compositor import Compositor
from app.frames import FrameResult
from app.pipeline import Pipeline
from app.processing import FrameProcessor
from app.sinks import CallbackSink, RecorderSink, SinkError, VirtualCameraSink, virtual_camera_help
from app.sources import VideoFileSource


def result_of(frame: np.ndarray) -> FrameResult:
    return FrameResult(0, frame, np.ones(frame.shape[:2], np.float32), frame)


def test_virtual_camera_gets_bgr_frames_of_the_output_size_through_pyvirtualcam(fake_vcam):
    import pyvirtualcam

    sink = VirtualCameraSink(fps=25, backend="fake")
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 0] = 200  # blue in BGR
    sink.send(result_of(frame))
    sink.send(result_of(frame))
    assert fake_vcam.opened == [{"width": 64, "height": 48, "fps": 25,
                                     "fourcc": pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)}]
    assert len(fake_vcam.frames) == 2
    sent = fake_vcam.frames[0].reshape(48, 64, 3)
    assert np.array_equal(sent, frame)  # handed over as BGR, unconverted: the backend converts once, natively
    assert sink.is_open and "/dev/fakecam0" in sink.status and "64x48 @ 25 fps" in sink.status
    sink.close()
    assert fake_vcam.closed == 1 and not sink.is_open


def test_virtual_camera_reopens_when_the_output_size_changes(fake_vcam):
    sink = VirtualCameraSink(fps=30, backend="fake")
    sink.send(result_of(np.zeros((48, 64, 3), np.uint8)))
    sink.send(result_of(np.zeros((72, 128, 3), np.uint8)))
    assert [(o["width"], o["height"]) for o in fake_vcam.opened] == [(64, 48), (128, 72)]
    assert fake_vcam.closed == 1
    assert fake_vcam.frames[-1].size == 72 * 128 * 3
    sink.close()


def test_missing_virtual_camera_explains_what_to_install(fake_vcam):
    sink = VirtualCameraSink(backend="missing")
    with pytest.raises(SinkError) as err:
        sink.send(result_of(np.zeros((48, 64, 3), np.uint8)))
    text = str(err.value)
    assert "Virtual camera unavailable" in text
    if sys.platform.startswith("linux"):
        assert "v4l2loopback" in text and "exclusive_caps=1" in text
    assert sink.status == "unavailable" and not sink.is_open


@pytest.mark.skipif(not sys.platform.startswith("linux") or bool(glob.glob("/dev/video*")),
                    reason="needs a Linux machine without video devices (like CI)")
def test_real_pyvirtualcam_backend_without_a_device_is_a_sink_error():
    """pyvirtualcam's own v4l2loopback backend raises RuntimeError here (no module); we turn it into help."""
    sink = VirtualCameraSink(backend="v4l2loopback")
    with pytest.raises(SinkError, match="exclusive_caps=1"):
        sink.send(result_of(np.zeros((48, 64, 3), np.uint8)))


def test_unknown_virtual_camera_backend_is_a_clear_error():
    with pytest.raises(SinkError, match="unknown virtual camera backend"):
        VirtualCameraSink(backend="nonexistent-backend").send(result_of(np.zeros((8, 8, 3), np.uint8)))


def test_help_text_names_the_os_specific_fix_and_the_cause():
    text = virtual_camera_help("No device found\nsecond line")
    assert "(details: No device found)" in text
    if sys.platform.startswith("linux"):
        assert "modprobe v4l2loopback" in text


def test_missing_virtual_camera_keeps_the_preview_running(fake_vcam, video_file):
    previews = []
    events = []
    engine = FakeEngine()
    pipeline = Pipeline(engine, FrameProcessor(engine, Compositor(ColorBackground((0, 0, 0)))),
                        [CallbackSink("preview", previews.append)], on_event=events.append)
    pipeline.add_sink(VirtualCameraSink(backend="missing"))
    pipeline.start(lambda: VideoFileSource(video_file))
    try:
        assert wait_until(lambda: len(previews) >= 8)
    finally:
        pipeline.stop()
    assert [s.name for s in pipeline.sinks] == ["preview"]
    assert sum(e.topic == "sink:virtual camera" for e in events) == 1


def test_pipeline_streams_to_the_virtual_camera(fake_vcam, video_file):
    engine = FakeEngine()
    sink = VirtualCameraSink(fps=30, backend="fake")
    pipeline = Pipeline(engine, FrameProcessor(engine, Compositor(ColorBackground((0, 0, 255)))), [sink])
    pipeline.start(lambda: VideoFileSource(video_file))
    try:
        assert wait_until(lambda: len(fake_vcam.frames) >= 3)
    finally:
        pipeline.stop()
    first = fake_vcam.frames[0].reshape(120, 160, 3)
    assert tuple(first[0, 0]) == (0, 0, 255)  # a corner is background: the chosen colour
    assert fake_vcam.closed == 1  # released when the pipeline stopped


def test_recorder_writes_a_readable_video(tmp_path):
    out = tmp_path / "rec" / "out.mp4"
    sink = RecorderSink(out, fps=20)
    frame = np.full((48, 64, 3), 128, np.uint8)
    for _ in range(5):
        sink.send(result_of(frame))
    sink.send(result_of(np.zeros((96, 128, 3), np.uint8)))  # a size change is resized, not fatal
    sink.close()
    cap = cv2.VideoCapture(str(out))
    n = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        assert f.shape == (48, 64, 3)
        n += 1
    assert n == 6


def test_recorder_rejects_containers_it_cannot_encode(tmp_path):
    with pytest.raises(SinkError, match="cannot record"):
        RecorderSink(tmp_path / "x.gif")


def test_live_recording_keeps_wall_clock_time_when_frames_come_slowly(tmp_path, monkeypatch):
    """At 5 processed frames per second, a 20 fps file must repeat each frame ~4x to play at real speed."""
    clock = {"t": 100.0}
    monkeypatch.setattr("app.sinks.time.monotonic", lambda: clock["t"])
    sink = RecorderSink(tmp_path / "live.avi", fps=20, realtime=True)
    for i in range(5):
        frame = np.full((48, 64, 3), 40 * i, np.uint8)
        sink.send(result_of(frame))
        clock["t"] += 0.2
    sink.close()
    assert sink.frames_written == 1 + 4 * 4  # one second of video for one second of wall clock (+ first frame)
    frames = read_video_frames(tmp_path / "live.avi")
    assert len(frames) == 17
    values = [int(f[0, 0, 0]) for f in frames]
    expected = [0] + [40] * 4 + [80] * 4 + [120] * 4 + [160] * 4  # each frame held for its 0.2 s
    assert np.abs(np.array(values) - expected).max() < 10


def test_offline_recording_writes_each_frame_once(tmp_path):
    sink = RecorderSink(tmp_path / "r.avi", fps=20)
    for _ in range(3):
        sink.send(result_of(np.zeros((16, 16, 3), np.uint8)))
    sink.close()
    assert sink.frames_written == 3

