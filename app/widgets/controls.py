"""The settings column of the window: camera, background, matting, output.

Widgets only: it shows an ``AppSettings`` (``show_settings``) and exposes its widgets; ``app.window`` connects
them to the pipeline. Keeping the layout here keeps the window module about behaviour.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.assets import default_background
from app.settings import RESOLUTIONS, TARGET_FPS_CHOICES, AppSettings
from app.sources import CameraEntry
from app.widgets.gallery import BackgroundGallery

BACKGROUND_MODE_LABELS = {"image": "Picture", "blur": "Blur my room", "color": "Solid colour",
                          "video": "Video", "none": "None (original)"}
MODEL_SIDE_CAPS = {"Full resolution": 3840, "Up to 1080p": 1920, "Up to 720p (lighter on the CPU)": 1280}


def select_data(combo: QComboBox, data: object) -> None:
    """Select the item whose data is ``data`` (no change if there is none)."""
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


def virtual_camera_backends() -> list[str]:
    """pyvirtualcam's backends on this OS (v4l2loopback on Linux; obs / unitycapture elsewhere)."""
    try:
        from pyvirtualcam.camera import BACKENDS
    except ImportError:
        return []
    return list(BACKENDS)


class ControlPanel(QWidget):
    def __init__(self, hotkeys_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        side = QVBoxLayout(self)
        side.addWidget(self._build_source_group())
        side.addWidget(self._build_background_group())
        side.addWidget(self._build_matting_group())
        side.addWidget(self._build_output_group())
        if hotkeys_text:
            keys = QLabel(hotkeys_text)
            keys.setWordWrap(True)
            keys.setStyleSheet("color: gray;")
            side.addWidget(keys)
        side.addStretch(1)

    def _build_source_group(self) -> QGroupBox:
        box = QGroupBox("Camera")
        form = QFormLayout(box)
        self.source_combo = QComboBox()
        self.resolution_combo = QComboBox()
        for label in RESOLUTIONS:
            self.resolution_combo.addItem(label, label)
        self.fps_combo = QComboBox()
        for fps in (15, 24, 30, 60):
            self.fps_combo.addItem(f"{fps} fps", fps)
        self.source_info_label = QLabel("opening...")
        self.source_info_label.setWordWrap(True)
        form.addRow("Source", self.source_combo)
        form.addRow("Resolution", self.resolution_combo)
        form.addRow("Frame rate", self.fps_combo)
        form.addRow("Delivers", self.source_info_label)
        return box

    def _build_background_group(self) -> QGroupBox:
        box = QGroupBox("Background")
        layout = QVBoxLayout(box)
        self.mode_combo = QComboBox()
        for key, label in BACKGROUND_MODE_LABELS.items():
            self.mode_combo.addItem(label, key)
        layout.addWidget(self.mode_combo)
        self.gallery = BackgroundGallery()
        layout.addWidget(self.gallery)
        self.add_picture_button = QPushButton("Add picture...")
        layout.addWidget(self.add_picture_button)
        blur_row = QHBoxLayout()
        self.blur_slider = QSlider(Qt.Orientation.Horizontal)
        self.blur_slider.setRange(0, 100)
        self.blur_value = QLabel()
        blur_row.addWidget(QLabel("Blur"))
        blur_row.addWidget(self.blur_slider, 1)
        blur_row.addWidget(self.blur_value)
        layout.addLayout(blur_row)
        other_row = QHBoxLayout()
        self.color_button = QPushButton("Colour...")
        self.video_button = QPushButton("Video...")
        other_row.addWidget(self.color_button)
        other_row.addWidget(self.video_button)
        layout.addLayout(other_row)
        return box

    def _build_matting_group(self) -> QGroupBox:
        box = QGroupBox("Matting")
        form = QFormLayout(box)
        self.cra_check = QCheckBox("Cross Region Attention")
        self.cra_check.setToolTip("Lets each refined edge region look at its neighbours: cleaner hair and "
                                  "edges, a little slower. Takes effect on the next frame.")
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, 90)
        self.smoothing_slider.setToolTip("Calms edge flicker: averages the alpha over time only in the uncertain "
                                         "band and only where the picture does not move.")
        self.device_combo = QComboBox()
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("GPU (CUDA)", "cuda")
        self.backend_combo = QComboBox()
        self.backend_combo.addItem("PyTorch", "torch")
        self.backend_combo.addItem("ONNX Runtime", "onnxruntime")
        self.cap_combo = QComboBox()
        for label, side in MODEL_SIDE_CAPS.items():
            self.cap_combo.addItem(label, side)
        self.target_fps_combo = QComboBox()
        self.target_fps_combo.addItem("Off (full quality)", 0)
        for fps in TARGET_FPS_CHOICES:
            self.target_fps_combo.addItem(f"{fps} fps", fps)
        self.target_fps_combo.setToolTip("Adaptive quality: when frames take too long, refine fewer edge regions, "
                                         "then matte at a lower resolution, to hold this frame rate. "
                                         "Takes effect on the next frame.")
        self.engine_label = QLabel("loading...")
        self.engine_label.setWordWrap(True)
        self.model_button = QPushButton("Model file...")
        self.onnx_button = QPushButton("ONNX folder...")
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_button)
        model_row.addWidget(self.onnx_button)
        form.addRow(self.cra_check)
        form.addRow("Smoothing", self.smoothing_slider)
        form.addRow("Device", self.device_combo)
        form.addRow("Backend", self.backend_combo)
        form.addRow("Matting size", self.cap_combo)
        form.addRow("Target FPS", self.target_fps_combo)
        form.addRow("Running", self.engine_label)
        form.addRow(model_row)
        return box

    def _build_output_group(self) -> QGroupBox:
        box = QGroupBox("Output")
        form = QFormLayout(box)
        self.vcam_backend_combo = QComboBox()
        self.vcam_backend_combo.addItem("Automatic", "")
        for name in virtual_camera_backends():
            self.vcam_backend_combo.addItem(name, name)
        self.vcam_device_edit = QLineEdit()
        self.vcam_device_edit.setPlaceholderText("automatic (e.g. /dev/video10)")
        self.vcam_button = QPushButton("Start virtual camera")
        self.vcam_button.setCheckable(True)
        self.vcam_status = QLabel("stopped")
        self.vcam_status.setWordWrap(True)
        self.record_button = QPushButton("Start recording")
        self.record_button.setCheckable(True)
        self.record_status = QLabel("")
        self.record_status.setWordWrap(True)
        form.addRow("Backend", self.vcam_backend_combo)
        form.addRow("Device", self.vcam_device_edit)
        form.addRow(self.vcam_button)
        form.addRow("Virtual camera", self.vcam_status)
        form.addRow(self.record_button)
        form.addRow(self.record_status)
        return box

    def populate_sources(self, cameras: list[CameraEntry], s: AppSettings) -> None:
        """Detected cameras, the saved one (even if absent), the demo clip, and file choices."""
        combo = self.source_combo
        combo.blockSignals(True)
        combo.clear()
        for cam in cameras:
            combo.addItem(cam.label, ("camera", str(cam.device)))
        if s.source_kind == "camera" and all(str(c.device) != s.camera for c in cameras):
            combo.addItem(f"camera {s.camera} (not found)", ("camera", s.camera))
        combo.addItem("Other camera (index or device path)...", ("camera", None))
        combo.addItem("Demo clip (bundled)", ("demo", ""))
        if s.source_kind in ("video", "image") and s.source_path:
            combo.addItem(Path(s.source_path).name, (s.source_kind, s.source_path))
        combo.addItem("Video file...", ("video", None))
        combo.addItem("Picture...", ("image", None))
        combo.blockSignals(False)

    def show_settings(self, s: AppSettings) -> None:
        """Put ``s`` into the widgets without firing their change signals."""
        widgets = (self.source_combo, self.resolution_combo, self.fps_combo, self.mode_combo, self.blur_slider,
                   self.cra_check, self.smoothing_slider, self.device_combo, self.backend_combo, self.cap_combo,
                   self.target_fps_combo, self.vcam_backend_combo, self.vcam_device_edit)
        for w in widgets:
            w.blockSignals(True)
        current = {"camera": ("camera", s.camera), "demo": ("demo", "")}.get(s.source_kind,
                                                                             (s.source_kind, s.source_path))
        select_data(self.source_combo, current)
        label = next((k for k, v in RESOLUTIONS.items() if v == (s.width, s.height)), None)
        if label is None:
            self.resolution_combo.addItem(f"{s.width}x{s.height}", f"{s.width}x{s.height}")
            label = f"{s.width}x{s.height}"
        select_data(self.resolution_combo, label)
        if self.fps_combo.findData(s.fps) < 0:
            self.fps_combo.addItem(f"{s.fps} fps", s.fps)
        select_data(self.fps_combo, s.fps)
        select_data(self.mode_combo, s.background_mode)
        self.blur_slider.setValue(s.blur_strength)
        self.blur_value.setText(str(s.blur_strength))
        self.cra_check.setChecked(s.use_cra)
        self.smoothing_slider.setValue(round(s.temporal_smoothing * 100))
        select_data(self.device_combo, s.device)
        select_data(self.backend_combo, s.engine_backend)
        cap_index = self.cap_combo.findData(s.max_model_side)
        if cap_index < 0:
            self.cap_combo.addItem(f"Up to {s.max_model_side} px", s.max_model_side)
        select_data(self.cap_combo, s.max_model_side)
        if self.target_fps_combo.findData(s.target_fps) < 0:
            self.target_fps_combo.addItem(f"{s.target_fps} fps", s.target_fps)
        select_data(self.target_fps_combo, s.target_fps)
        if s.virtual_camera_backend and self.vcam_backend_combo.findData(s.virtual_camera_backend) < 0:
            self.vcam_backend_combo.addItem(s.virtual_camera_backend, s.virtual_camera_backend)
        select_data(self.vcam_backend_combo, s.virtual_camera_backend)
        self.vcam_device_edit.setText(s.virtual_camera_device)
        if s.background_mode == "image":
            self.gallery.select_path(s.background_path or str(default_background() or ""))
        for w in widgets:
            w.blockSignals(False)
