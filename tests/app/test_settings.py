"""Settings: defaults, round trip, validation, and a corrupt file never stopping the app."""

from __future__ import annotations

import json

import pytest

from app.settings import AppSettings, config_dir, default_settings_path, load_settings, save_settings


def test_config_dir_follows_xdg_config_home(isolated_config):
    assert config_dir() == isolated_config
    assert default_settings_path() == isolated_config / "settings.json"


def test_missing_file_gives_defaults_without_messages():
    settings, messages = load_settings()
    assert settings == AppSettings()
    assert messages == []


def test_save_then_load_round_trips_every_field(tmp_path):
    original = AppSettings(
        source_kind="video", source_path="/x/clip.mp4", width=1920, height=1080, fps=25, background_mode="blur",
        blur_strength=80, color="#112233", user_backgrounds=("/a.jpg", "/b.png"), use_cra=False,
        temporal_smoothing=0.5, device="cuda", mirror_preview=False, preview_view="trimap", target_fps=24,
    )
    path = save_settings(original)
    assert path == default_settings_path()
    loaded, messages = load_settings()
    assert messages == []
    assert loaded == original


def test_corrupt_file_gives_defaults_and_a_message():
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{ this is not json", encoding="utf-8")
    settings, messages = load_settings()
    assert settings == AppSettings()
    assert len(messages) == 1 and "using defaults" in messages[0]


def test_binary_garbage_file_gives_defaults_and_a_message():
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage\x9c")
    settings, messages = load_settings()
    assert settings == AppSettings()
    assert messages


def test_non_object_json_gives_defaults_and_a_message():
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2, 3]")
    settings, messages = load_settings()
    assert settings == AppSettings()
    assert "JSON object" in messages[0]


def test_bad_values_fall_back_one_by_one_and_good_values_survive():
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "use_cra": False,            # good
        "blur_strength": 500,        # out of range
        "device": "tpu",             # not a choice
        "color": "red",              # not #rrggbb
        "width": "wide",             # wrong type
        "mystery": 1,                # unknown
    }))
    settings, messages = load_settings()
    assert settings.use_cra is False
    assert settings.blur_strength == AppSettings().blur_strength
    assert settings.device == "cpu"
    assert settings.color == AppSettings().color
    assert settings.width == AppSettings().width
    text = " ".join(messages)
    for word in ("blur_strength", "device", "color", "width", "mystery"):
        assert word in text


def test_invalid_settings_cannot_be_constructed():
    with pytest.raises(ValueError, match="blur_strength"):
        AppSettings(blur_strength=-1)
    with pytest.raises(ValueError, match="preview_view"):
        AppSettings().with_changes(preview_view="sideways")


def test_camera_device_is_index_or_path():
    assert AppSettings(camera="2").camera_device == 2
    assert AppSettings(camera="/dev/video4").camera_device == "/dev/video4"


def test_save_is_atomic_and_leaves_no_temp_files():
    save_settings(AppSettings(fps=15))
    save_settings(AppSettings(fps=24))
    files = sorted(p.name for p in default_settings_path().parent.iterdir())
    assert files == ["settings.json"]
    assert load_settings()[0].fps == 24


def test_target_fps_defaults_to_off():
    assert AppSettings().target_fps == 0


@pytest.mark.parametrize("bad", ["fast", -5, 1000, True, 2.5, [30]])
def test_bad_target_fps_falls_back_to_off_with_a_message(bad):
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"target_fps": bad, "fps": 15}))
    settings, messages = load_settings()
    assert settings.target_fps == 0 and settings.fps == 15
    assert len(messages) == 1 and "target_fps" in messages[0] and "using the default" in messages[0]
    with pytest.raises(ValueError, match="target_fps"):
        AppSettings(target_fps=bad)


def test_null_target_fps_means_off_without_complaint():
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"target_fps": None}))
    assert load_settings() == (AppSettings(), [])
