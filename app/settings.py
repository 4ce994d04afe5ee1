"""The app's settings: one frozen dataclass, saved as JSON in the user's config folder.

Loading never fails: a missing file gives the defaults, a corrupt file gives the defaults plus a message, and a
file with a few bad values keeps the good ones and reports the rest. A camera app that refuses to start because
of a settings file is worse than one that starts with defaults and says why.
No Qt here, so the command-line tools and the tests share this code with the window.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

APP_NAME = "mattecam"
SETTINGS_FILE = "settings.json"
SETTINGS_VERSION = 1

SOURCE_KINDS = ("camera", "video", "image", "demo")
BACKGROUND_MODES = ("image", "blur", "color", "video", "none")
PREVIEW_VIEWS = ("output", "original", "alpha", "trimap")
DEVICES = ("cpu", "cuda")
ENGINE_BACKENDS = ("torch", "onnxruntime")
#: Named capture resolutions offered in the picker; the camera reports what it actually delivers.
RESOLUTIONS: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
#: Highest ``target_fps`` accepted (0 = adaptive quality off); the window offers TARGET_FPS_CHOICES.
MAX_TARGET_FPS = 240
TARGET_FPS_CHOICES = (15, 24, 30)
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class AppSettings:
    """Everything the user can change in the app. Every field has a safe default."""

    source_kind: str = "camera"
    #: Camera index ("0") or device path ("/dev/video2"); for video/image sources, the file path.
    camera: str = "0"
    source_path: str = ""
    width: int = 1280
    height: int = 720
    fps: int = 30
    background_mode: str = "image"
    #: Picture (or video, for mode "video") behind the person; "" = the first bundled picture.
    background_path: str = ""
    video_background_path: str = ""
    blur_strength: int = 50
    color: str = "#2e7d32"
    #: Pictures the user added with "Add picture" (shown in the gallery after the bundled ones).
    user_backgrounds: tuple[str, ...] = ()
    use_cra: bool = True
    #: 0 = off; otherwise the weight of the previous alpha inside the uncertain band of still pixels.
    temporal_smoothing: float = 0.3
    device: str = "cpu"
    engine_backend: str = "torch"
    #: "" = the engine's default model.
    model_path: str = ""
    #: Folder from ``mattecam export-onnx``, used when engine_backend is "onnxruntime".
    onnx_dir: str = ""
    #: Frames with a longer side are matted at this size and the alpha is scaled back (CPU load cap).
    max_model_side: int = 3840
    #: 0 = off (full quality); otherwise adaptive quality lowers the refinement budget, then the matting
    #: resolution, to hold this many frames per second (a weak laptop still gets a fluid picture).
    target_fps: int = 0
    mirror_preview: bool = True
    preview_view: str = "output"
    virtual_camera_backend: str = ""
    virtual_camera_device: str = ""
    record_dir: str = ""

    def __post_init__(self) -> None:
        problems = validation_problems(self)
        if problems:
            raise ValueError("invalid settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["user_backgrounds"] = list(self.user_backgrounds)
        return {"version": SETTINGS_VERSION, **data}

    def with_changes(self, **changes: Any) -> AppSettings:
        """A copy with ``changes`` applied (raises ``ValueError`` on an invalid value)."""
        return replace(self, **changes)

    @property
    def camera_device(self) -> int | str:
        """The camera as OpenCV wants it: an int index when the text is a number, else the device path."""
        return int(self.camera) if self.camera.strip().isdigit() else self.camera


def _check_field(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for field ``name`` (None when it is)."""

    def choice(options: tuple[str, ...]) -> str | None:
        return None if value in options else f"{name} must be one of {', '.join(options)} (got {value!r})"

    def int_range(lo: int, hi: int) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return f"{name} must be an integer in [{lo}, {hi}] (got {value!r})"
        return None

    checks = {
        "source_kind": lambda: choice(SOURCE_KINDS),
        "background_mode": lambda: choice(BACKGROUND_MODES),
        "preview_view": lambda: choice(PREVIEW_VIEWS),
        "device": lambda: choice(DEVICES),
        "engine_backend": lambda: choice(ENGINE_BACKENDS),
        "width": lambda: int_range(16, 7680),
        "height": lambda: int_range(16, 4320),
        "fps": lambda: int_range(1, 240),
        "blur_strength": lambda: int_range(0, 100),
        "max_model_side": lambda: int_range(64, 7680),
        "target_fps": lambda: int_range(0, MAX_TARGET_FPS),
        "use_cra": lambda: None if isinstance(value, bool) else f"{name} must be true or false",
        "mirror_preview": lambda: None if isinstance(value, bool) else f"{name} must be true or false",
        "color": lambda: None if isinstance(value, str) and _HEX_COLOR.match(value) else
        f"{name} must look like #rrggbb (got {value!r})",
        "temporal_smoothing": lambda: None if isinstance(value, (int, float)) and not isinstance(value, bool)
        and 0.0 <= value <= 0.9 else f"{name} must be a number in [0, 0.9] (got {value!r})",
        "user_backgrounds": lambda: None if isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        else f"{name} must be a list of file paths",
    }
    check = checks.get(name)
    if check is not None:
        return check()
    return None if isinstance(value, str) else f"{name} must be text (got {value!r})"


def validation_problems(settings: AppSettings) -> list[str]:
    """Every invalid field of ``settings``, as readable sentences."""
    return [p for f in fields(settings) if (p := _check_field(f.name, getattr(settings, f.name))) is not None]


def settings_from_dict(data: Any) -> tuple[AppSettings, list[str]]:
    """Settings from parsed JSON: good values kept, bad or unknown ones replaced by defaults and reported."""
    if not isinstance(data, dict):
        return AppSettings(), ["the settings file does not hold a JSON object; using defaults"]
    messages: list[str] = []
    known = {f.name: f for f in fields(AppSettings)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "version":
            continue
        if key not in known:
            messages.append(f"ignored unknown setting {key!r}")
            continue
        if key == "user_backgrounds" and isinstance(value, list):
            value = tuple(value)
        if key == "temporal_smoothing" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if key == "target_fps" and value is None:  # null is "off" too
            value = 0
        problem = _check_field(key, value)
        if problem:
            messages.append(f"{problem}; using the default")
            continue
        values[key] = value
    return AppSettings(**values), messages


def config_dir() -> Path:
    """The user's config folder for mattecam (XDG on Linux, Application Support on macOS, APPDATA on Windows).

    Plain-Python equivalent of QStandardPaths.AppConfigLocation, so the headless commands need no Qt.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / APP_NAME


def default_settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: Path | None = None) -> tuple[AppSettings, list[str]]:
    """Read settings from ``path`` (default: the user's config folder) and say what had to be fixed.

    Returns ``(settings, messages)``; ``messages`` is empty when the file was fine or absent.
    """
    path = default_settings_path() if path is None else Path(path)
    if not path.exists():
        return AppSettings(), []
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = f"could not read the settings file {path} ({exc}); using defaults"
        log.warning(message)
        return AppSettings(), [message]
    settings, messages = settings_from_dict(data)
    messages = [f"{path.name}: {m}" for m in messages]
    for message in messages:
        log.warning(message)
    return settings, messages


def save_settings(settings: AppSettings, path: Path | None = None) -> Path:
    """Write ``settings`` atomically (temp file + rename), so a crash mid-write never leaves a corrupt file."""
    path = default_settings_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings.to_dict(), indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolution_label(width: int, height: int) -> str:
    for label, size in RESOLUTIONS.items():
        if size == (width, height):
            return label
    return f"{width}x{height}"
