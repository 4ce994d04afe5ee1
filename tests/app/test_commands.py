"""The headless commands: render (real engine, end to end), stream (fake virtual camera), gui --help wiring."""

from __future__ import annotations

import argparse
import re

import cv2
import numpy as np
import pytest
from app_doubles import FakeEngine, read_video_frames, write_split_picture, write_video

from app.commands import gui, render, stream


def parse(module, argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    module.register(sub)
    return parser.parse_args([module.NAME, *argv])



def test_app_commands_are_registered_in_the_cli():
    from app.cli import APP_COMMANDS

    assert set(APP_COMMANDS) == {"app.commands.gui", "app.commands.stream", "app.commands.render"}


def test_render_composites_every_frame_with_the_real_engine(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    source = write_video(tmp_path / "in.mp4", n=3, size=(96, 64), fps=12)
    out = tmp_path / "out.mp4"
    args = parse(render, ["--source", str(source), "--color", "#00ff00", "-o", str(out), "--no-progress"])
    assert args.func(args) == 0
    frames = read_video_frames(out)
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    assert "wrote" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12, abs=0.5)


def test_render_background_where_alpha_is_zero(tmp_path, monkeypatch):
    monkeypatch.setattr("app.commands.render.engine_from_args", lambda args: FakeEngine())
    source = write_video(tmp_path / "in.mp4", n=4, size=(160, 120))
    out = tmp_path / "out.avi"  # MJPG: lossy, so compare loosely
    args = parse(render, ["--source", str(source), "--color", "#0000ff", "-o", str(out), "--no-progress",
                          "--smoothing", "0"])
    assert args.func(args) == 0
    frames = read_video_frames(out)
    assert len(frames) == 4
    corner = frames[-1][:10, :10].reshape(-1, 3).mean(axis=0)
    assert np.allclose(corner, (255, 0, 0), atol=8)  # BGR blue: a corner is outside the fake ellipse


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "nope.mp4", "-o", "x.mp4"], "not found"),
        (["--source", "IN", "-o", "x.gif"], "cannot record"),
        (["--source", "IN", "-o", "x.mp4", "--background", "missing.jpg"], "not found"),
        (["--source", "IN", "-o", "IN"], "overwrite"),
        (["--source", "IN", "-o", "x.mp4", "--smoothing", "3"], "smoothing"),
        (["--source", "IN", "-o", "x.mp4", "--target-fps", "-1"], "--target-fps"),
    ],
)
def test_render_bad_input_is_a_clear_message(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    clip = str(write_video(tmp_path / "in.mp4", n=2))
    argv = [clip if a == "IN" else a for a in argv]
    args = parse(render, argv)
    assert args.func(args) == 2
    assert message in capsys.readouterr().err


def test_stream_sends_composites_to_the_virtual_camera(tmp_path, fake_vcam, monkeypatch, capsys):
    monkeypatch.setattr("app.commands.stream.engine_from_args", lambda args: FakeEngine())
    clip = write_video(tmp_path / "in.mp4", n=6)
    picture = write_split_picture(tmp_path / "bg.png")
    args = parse(stream, ["--source", str(clip), "--background", str(picture), "--vcam-backend", "fake",
                          "--duration", "0.6", "--stats-every", "0.2", "--no-cra"])
    assert args.func(args) == 0
    assert len(fake_vcam.frames) >= 3
    assert fake_vcam.opened[0]["width"] == 160 and fake_vcam.closed == 1
    assert "fps" in capsys.readouterr().out


def test_stream_without_a_virtual_camera_explains_and_exits(tmp_path, fake_vcam, monkeypatch, capsys):
    monkeypatch.setattr("app.commands.stream.engine_from_args", lambda args: FakeEngine())
    clip = write_video(tmp_path / "in.mp4", n=6)
    args = parse(stream, ["--source", str(clip), "--blur", "40", "--vcam-backend", "missing",
                          "--duration", "5", "--stats-every", "0.1"])
    assert args.func(args) == 3
    assert "v4l2loopback" in capsys.readouterr().err


def test_stream_without_a_camera_suggests_the_demo_clip(tmp_path, capsys):
    args = parse(stream, ["--camera", str(tmp_path / "video3")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "No camera found" in err and "--source assets/demo.mp4" in err


def test_stream_with_an_unreadable_background_is_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bg.jpg"
    bad.write_text("not a picture")
    args = parse(stream, ["--background", str(bad)])
    assert args.func(args) == 2
    assert "bg.jpg" in capsys.readouterr().err


def test_gui_options_parse():
    args = parse(gui, ["--demo", "--reset-settings", "--device", "cuda"])
    assert args.demo and args.reset_settings and args.device == "cuda" and args.func is gui.run


def test_gui_without_a_display_says_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr("sys.platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    args = parse(gui, [])
    assert args.func(args) == 2
    assert "mattecam stream" in capsys.readouterr().err


def test_render_and_stream_take_a_target_fps(tmp_path, fake_vcam, monkeypatch, capsys):
    engines = []

    def fake_engine(args):
        engines.append(FakeEngine())
        return engines[-1]

    monkeypatch.setattr("app.commands.render.engine_from_args", fake_engine)
    monkeypatch.setattr("app.commands.stream.engine_from_args", fake_engine)
    clip = write_video(tmp_path / "in.mp4", n=3)
    args = parse(render, ["--source", str(clip), "--color", "#000000", "-o", str(tmp_path / "out.avi"),
                          "--no-progress", "--target-fps", "15"])
    assert args.func(args) == 0
    assert engines[0].calls == 3 and None not in engines[0].budgets_seen  # adaptive quality set a budget
    args = parse(stream, ["--source", str(clip), "--blur", "40", "--vcam-backend", "fake", "--duration", "0.4",
                          "--stats-every", "0.1", "--target-fps", "24"])
    assert args.func(args) == 0
    assert engines[1].calls and None not in engines[1].budgets_seen
    assert re.search(r"adaptive [0-9.]+x, [0-9]+ regions", capsys.readouterr().out)
    args = parse(render, ["--source", str(clip), "--color", "#000000", "-o", str(tmp_path / "full.avi"),
                          "--no-progress"])
    assert args.func(args) == 0
    assert set(engines[2].budgets_seen) == {None}  # off by default: full quality
