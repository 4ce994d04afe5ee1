"""The desktop window: a thin Qt layer over ``app.pipeline`` (napari-style split: no frame work happens here).

The GUI thread only paints ready-made preview frames and turns clicks into pipeline changes, which the worker
applies between frames. Every setting takes effect at once (no restart) and is saved to the user's config
folder. Problems are shown in a notice bar, never as a modal dialog, so a running call is never blocked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.assets import IMAGE_SUFFIXES, VIDEO_SUFFIXES, bundled_backgrounds, default_background
from app.backgrounds import Background, BackgroundError, BackgroundSpec, load_background
from app.compositor import Compositor
from app.engine_loader import EngineRequest, LoadedEngine, load_engine
from app.frames import PreviewFrame
from app.pipeline import Pipeline, PipelineEvent
from app.preview_views import VIEW_LABELS, render_view, stats_lines
from app.processing import FrameProcessor, LoadingEngine
from app.settings import RESOLUTIONS, AppSettings, save_settings
from app.sinks import PreviewSink, RecorderSink, SinkError, VirtualCameraSink
from app.smoothing import TemporalSmoother
from app.sources import CameraEntry, FrameSource, SourceInfo, SourceSpec, list_cameras, make_source
from app.widgets.controls import ControlPanel, select_data
from app.widgets.notice import NoticeBar
from app.widgets.preview import PreviewWidget

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineRequest], LoadedEngine]
SourceFactory = Callable[[SourceSpec], FrameSource]

MIRROR_NOTE = ("Mirroring changes this preview only. Meeting apps mirror your self-view themselves, "
               "and the others in the call always see you the right way round.")
HOTKEYS = {"C": "CRA on/off", "M": "mirror preview", "V": "virtual camera", "B": "blur on/off",
           "R": "record", "1-4": "preview view"}


class _Bridge(QObject):
    """Carries pipeline callbacks (worker threads) into the GUI thread as queued signals."""

    preview_ready = Signal()
    event = Signal(object)
    source_opened = Signal(object)
    engine_loaded = Signal(int, object, str)


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: AppSettings,
        *,
        settings_path: Path | None = None,
        engine_factory: EngineFactory = load_engine,
        source_factory: SourceFactory = make_source,
        camera_lister: Callable[[], list[CameraEntry]] = list_cameras,
        startup_messages: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.setWindowTitle("mattecam")
        self.settings = settings
        self.settings_path = settings_path
        self._engine_factory = engine_factory
        self._source_factory = source_factory
        self._camera_lister = camera_lister
        self._engine_generation = 0
        self.engine_info: LoadedEngine | None = None
        self.vcam_sink: VirtualCameraSink | None = None
        self.recorder: RecorderSink | None = None
        self._last_preview: PreviewFrame | None = None
        self._closed = False
        self._startup_background_problem = ""

        self._bridge = _Bridge()
        self._bridge.preview_ready.connect(self._on_preview_ready)
        self._bridge.event.connect(self._on_event)
        self._bridge.source_opened.connect(self._on_source_opened)
        self._bridge.engine_loaded.connect(self._on_engine_loaded)

        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(self.save_settings_now)

        self._build_ui()
        self._apply_settings_to_widgets()
        self._connect_widgets()
        self._install_hotkeys()

        self.preview_sink = PreviewSink(self._bridge.preview_ready.emit)
        compositor = Compositor(self._initial_background())
        processor = FrameProcessor(LoadingEngine(), compositor, TemporalSmoother(settings.temporal_smoothing),
                                   settings.max_model_side, settings.target_fps)
        self.pipeline = Pipeline(processor.engine, processor, [self.preview_sink],
                                 on_event=self._bridge.event.emit, on_source_open=self._bridge.source_opened.emit)
        self.pipeline.start(self._open_current_source)
        self._load_engine()
        messages = [*startup_messages]
        if self._startup_background_problem:
            messages.append(f"{self._startup_background_problem}; using the blur background instead.")
        if messages:
            self.notice.show_message("warning", "\n".join(messages), topic="startup")

    # ------------------------------------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        central = QWidget()
        root = QHBoxLayout(central)
        left = QVBoxLayout()
        self.notice = NoticeBar()
        self.preview = PreviewWidget()
        left.addWidget(self.notice)
        left.addWidget(self.preview, 1)
        row = QHBoxLayout()
        self.view_combo = QComboBox()
        for key, label in VIEW_LABELS.items():
            self.view_combo.addItem(label, key)
        self.mirror_check = QCheckBox("Mirror preview")
        self.mirror_check.setToolTip(MIRROR_NOTE)
        mirror_note = QLabel("(preview only; others see you unmirrored)")
        mirror_note.setToolTip(MIRROR_NOTE)
        mirror_note.setStyleSheet("color: gray;")
        row.addWidget(QLabel("Show:"))
        row.addWidget(self.view_combo)
        row.addSpacing(12)
        row.addWidget(self.mirror_check)
        row.addWidget(mirror_note)
        row.addStretch(1)
        left.addLayout(row)
        root.addLayout(left, 1)

        self.controls = ControlPanel("Hotkeys: " + " · ".join(f"{k} {v}" for k, v in HOTKEYS.items()))
        self._populate_sources()
        problems = self.controls.gallery.add_pictures(bundled_backgrounds())
        user_pictures = [p for p in self.settings.user_backgrounds if Path(p).is_file()]
        problems += self.controls.gallery.add_pictures(user_pictures)
        for problem in problems:
            log.warning(problem)
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(400)
        root.addWidget(scroll)
        self.setCentralWidget(central)
        self.resize(1320, 900)

    def _populate_sources(self) -> None:
        self.controls.populate_sources(self._camera_lister(), self.settings)

    def _apply_settings_to_widgets(self) -> None:
        s = self.settings
        self.controls.show_settings(s)
        for widget in (self.view_combo, self.mirror_check):
            widget.blockSignals(True)
        select_data(self.view_combo, s.preview_view)
        self.mirror_check.setChecked(s.mirror_preview)
        for widget in (self.view_combo, self.mirror_check):
            widget.blockSignals(False)

    def _connect_widgets(self) -> None:
        self.controls.source_combo.currentIndexChanged.connect(self._on_source_combo)
        self.controls.resolution_combo.currentIndexChanged.connect(self._on_capture_format)
        self.controls.fps_combo.currentIndexChanged.connect(self._on_capture_format)
        self.controls.mode_combo.currentIndexChanged.connect(lambda: self.set_background_mode(self.controls.mode_combo.currentData()))
        self.controls.gallery.picked.connect(self.pick_background)
        self.controls.add_picture_button.clicked.connect(self._on_add_picture)
        self.controls.blur_slider.valueChanged.connect(self.set_blur_strength)
        self.controls.color_button.clicked.connect(self._on_pick_color)
        self.controls.video_button.clicked.connect(self._on_pick_video)
        self.controls.cra_check.toggled.connect(self.set_use_cra)
        self.controls.smoothing_slider.valueChanged.connect(lambda v: self.set_smoothing(v / 100.0))
        self.controls.device_combo.currentIndexChanged.connect(self._on_engine_choice)
        self.controls.backend_combo.currentIndexChanged.connect(self._on_engine_choice)
        self.controls.cap_combo.currentIndexChanged.connect(self._on_model_cap)
        self.controls.target_fps_combo.currentIndexChanged.connect(
            lambda: self.set_target_fps(int(self.controls.target_fps_combo.currentData())))
        self.controls.model_button.clicked.connect(self._on_pick_model)
        self.controls.onnx_button.clicked.connect(self._on_pick_onnx_dir)
        self.view_combo.currentIndexChanged.connect(self._on_view)
        self.mirror_check.toggled.connect(self._on_mirror)
        self.controls.vcam_button.toggled.connect(self.set_virtual_camera)
        self.controls.vcam_backend_combo.currentIndexChanged.connect(
            lambda: self._update(virtual_camera_backend=self.controls.vcam_backend_combo.currentData()))
        self.controls.vcam_device_edit.editingFinished.connect(
            lambda: self._update(virtual_camera_device=self.controls.vcam_device_edit.text().strip()))
        self.controls.record_button.toggled.connect(self.set_recording)

    def _install_hotkeys(self) -> None:
        bindings = {
            "C": self.controls.cra_check.toggle,
            "M": self.mirror_check.toggle,
            "V": self.controls.vcam_button.toggle,
            "R": self.controls.record_button.toggle,
            "B": self.toggle_blur,
        }
        for i in range(1, len(VIEW_LABELS) + 1):
            bindings[str(i)] = lambda i=i: self.view_combo.setCurrentIndex(i - 1)
        self._shortcuts = []
        for key, fn in bindings.items():
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(fn)
            self._shortcuts.append(shortcut)

    # -------------------------------------------------------------------------------------------- settings
    def _update(self, **changes: object) -> None:
        self.settings = self.settings.with_changes(**changes)
        self._save_timer.start()

    def save_settings_now(self) -> None:
        try:
            save_settings(self.settings, self.settings_path)
        except OSError as exc:
            self.notice.show_message("warning", f"Could not save settings: {exc}")

    # ------------------------------------------------------------------------------------------ the engine
    def _load_engine(self) -> None:
        """Load (or reload) the model on a background thread; the current engine keeps running meanwhile."""
        self._engine_generation += 1
        generation = self._engine_generation
        s = self.settings
        request = EngineRequest(model_path=s.model_path, device=s.device, backend=s.engine_backend,
                                use_cra=s.use_cra, onnx_dir=s.onnx_dir)
        self.controls.engine_label.setText(f"loading ({s.device}, {s.engine_backend})...")

        def work() -> None:
            try:
                loaded = self._engine_factory(request)
            except Exception as exc:  # reported in the window; the app keeps running
                log.exception("engine load failed")
                self._bridge.engine_loaded.emit(generation, None, str(exc))
                return
            self._bridge.engine_loaded.emit(generation, loaded, "")

        threading.Thread(target=work, name="engine-loader", daemon=True).start()

    def _on_engine_loaded(self, generation: int, loaded: LoadedEngine | None, error: str) -> None:
        if generation != self._engine_generation or self._closed:
            return  # a newer request superseded this one
        if loaded is None:
            self.controls.engine_label.setText("no model")
            self.notice.show_message("error", f"The matting model could not be started: {error}")
            placeholder = LoadingEngine()  # keeps hiding the room: better no person than an unmasked room
            placeholder.status_message = "No matting model: see the message above"
            self.pipeline.set_engine(placeholder)
            return
        loaded.engine.use_cra = self.settings.use_cra  # the user may have toggled it while loading
        self.engine_info = loaded
        self.pipeline.set_engine(loaded.engine)
        self.controls.engine_label.setText(loaded.description)
        if loaded.messages:
            self.notice.show_message("warning", "\n".join(loaded.messages))

    @property
    def engine(self) -> object:
        return self.pipeline.processor.engine

    def _on_engine_choice(self) -> None:
        self._update(device=self.controls.device_combo.currentData(), engine_backend=self.controls.backend_combo.currentData())
        self._load_engine()

    def set_model_path(self, path: str) -> None:
        """Use another checkpoint (a missing or corrupt one falls back to the default model, with a message)."""
        self._update(model_path=path)
        self._load_engine()

    def set_onnx_dir(self, path: str) -> None:
        self._update(onnx_dir=path, engine_backend="onnxruntime")
        select_data(self.controls.backend_combo, "onnxruntime")
        self._load_engine()

    def _on_pick_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.set_model_path(path)

    def _on_pick_onnx_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder written by mattecam export-onnx")
        if path:
            self.set_onnx_dir(path)

    def _on_model_cap(self) -> None:
        self._update(max_model_side=int(self.controls.cap_combo.currentData()))
        self.pipeline.set_max_model_side(self.settings.max_model_side)

    def set_target_fps(self, fps: int) -> None:
        """Adaptive quality on (hold ``fps``) or off (0, full quality): the worker applies it before its next frame."""
        self._update(target_fps=int(fps))
        self.pipeline.set_target_fps(self.settings.target_fps)
        combo = self.controls.target_fps_combo
        if combo.currentData() != self.settings.target_fps:
            combo.blockSignals(True)
            if combo.findData(self.settings.target_fps) < 0:
                combo.addItem(f"{self.settings.target_fps} fps", self.settings.target_fps)
            select_data(combo, self.settings.target_fps)
            combo.blockSignals(False)
        text = f"target {self.settings.target_fps} FPS" if fps else "adaptive quality off: full quality"
        self.statusBar().showMessage(text, 2000)

    def set_use_cra(self, enabled: bool) -> None:
        """CRA on/off: the worker applies it before its next frame."""
        self._update(use_cra=bool(enabled))
        self.pipeline.set_use_cra(bool(enabled))
        if self.controls.cra_check.isChecked() != enabled:
            self.controls.cra_check.setChecked(enabled)
        self.statusBar().showMessage(f"CRA {'on' if enabled else 'off'}", 2000)

    def set_smoothing(self, strength: float) -> None:
        self._update(temporal_smoothing=round(strength, 2))
        self.pipeline.set_smoothing(self.settings.temporal_smoothing)

    # -------------------------------------------------------------------------------------------- sources
    def _source_spec(self) -> SourceSpec:
        s = self.settings
        location = {"camera": s.camera, "demo": ""}.get(s.source_kind, s.source_path)
        return SourceSpec(kind=s.source_kind, location=location, width=s.width, height=s.height, fps=s.fps)

    def _open_current_source(self) -> FrameSource:
        return self._source_factory(self._source_spec())

    def set_source(self, kind: str, location: str = "") -> None:
        """Switch the input (camera index/path, video file, picture, or the demo clip) without a restart."""
        changes: dict[str, object] = {"source_kind": kind}
        if kind == "camera":
            changes["camera"] = location or self.settings.camera
        elif kind in ("video", "image"):
            changes["source_path"] = location
        self._update(**changes)
        self.controls.source_info_label.setText("opening...")
        self.notice.clear("source")
        self._populate_sources()
        self._apply_settings_to_widgets()
        self.pipeline.set_source(self._open_current_source)

    def use_demo_clip(self) -> None:
        self.set_source("demo")

    def _on_source_combo(self) -> None:
        data = self.controls.source_combo.currentData()
        if not data:
            return
        kind, location = data
        if location is None and kind == "camera":
            text, ok = QInputDialog.getText(self, "Camera", "Camera index (0, 1, ...) or device path:",
                                            text=self.settings.camera)
            if not ok or not text.strip():
                self._apply_settings_to_widgets()
                return
            location = text.strip()
        elif location is None:  # "Video file..." / "Picture...": ask for the file
            suffixes = VIDEO_SUFFIXES if kind == "video" else IMAGE_SUFFIXES
            path, _ = QFileDialog.getOpenFileName(self, "Open", "", f"Media ({' '.join('*' + s for s in suffixes)})")
            if not path:
                self._apply_settings_to_widgets()
                return
            location = path
        self.set_source(kind, location)

    def _on_capture_format(self) -> None:
        label = self.controls.resolution_combo.currentData()
        w, h = RESOLUTIONS.get(label) or tuple(int(v) for v in str(label).split("x"))
        self._update(width=w, height=h, fps=int(self.controls.fps_combo.currentData()))
        if self.settings.source_kind == "camera":
            self.controls.source_info_label.setText("reopening...")
            self.pipeline.set_source(self._open_current_source)

    def _on_source_opened(self, info: SourceInfo) -> None:
        text = info.description + (f"\n{info.note}" if info.note else "")
        self.controls.source_info_label.setText(text)

    # ----------------------------------------------------------------------------------------- backgrounds
    def _initial_background(self) -> Background:
        try:
            return load_background(self._background_spec(self.settings))
        except BackgroundError as exc:
            log.warning("%s; starting with the blur background", exc)
            self._startup_background_problem = str(exc)
            return load_background(BackgroundSpec(mode="blur", blur_strength=self.settings.blur_strength))

    def _background_spec(self, s: AppSettings) -> BackgroundSpec:
        path = s.background_path or str(default_background() or "")
        if s.background_mode == "video":
            path = s.video_background_path
        return BackgroundSpec(mode=s.background_mode, path=path, blur_strength=s.blur_strength, color=s.color)

    def _try_background(self, spec: BackgroundSpec) -> Background | None:
        try:
            return load_background(spec)
        except BackgroundError as exc:
            self.notice.show_message("error", f"{exc}. Keeping the current background.")
            return None

    def pick_background(self, path: str) -> bool:
        """Use picture ``path`` as the background; on a bad file keep the current one and say why."""
        background = self._try_background(BackgroundSpec(mode="image", path=path))
        if background is None:
            self.controls.gallery.select_path(self.settings.background_path)
            return False
        self.pipeline.set_background(background)
        self._update(background_mode="image", background_path=path)
        self._sync_mode_combo()
        self.controls.gallery.select_path(path)
        return True

    def add_background_file(self, path: str) -> bool:
        """'Add picture': check the file, put it in the gallery, remember it, and use it."""
        try:
            self.controls.gallery.add_picture(path)
        except BackgroundError as exc:
            self.notice.show_message("error", f"{exc}. Keeping the current background.")
            return False
        if path not in self.settings.user_backgrounds:
            self._update(user_backgrounds=(*self.settings.user_backgrounds, path))
        return self.pick_background(path)

    def _on_add_picture(self) -> None:
        pattern = " ".join("*" + s for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Add a background picture", "", f"Pictures ({pattern})")
        if path:
            self.add_background_file(path)

    def set_background_mode(self, mode: str) -> bool:
        if mode == "video" and not self.settings.video_background_path:
            self._on_pick_video()
            return self.settings.background_mode == "video"
        spec = self._background_spec(self.settings.with_changes(background_mode=mode))
        background = self._try_background(spec)
        if background is None:
            self._sync_mode_combo()
            return False
        self.pipeline.set_background(background)
        self._update(background_mode=mode)
        self._sync_mode_combo()
        return True

    def _sync_mode_combo(self) -> None:
        self.controls.mode_combo.blockSignals(True)
        select_data(self.controls.mode_combo, self.settings.background_mode)
        self.controls.mode_combo.blockSignals(False)

    def set_blur_strength(self, value: int) -> None:
        self.controls.blur_value.setText(str(value))
        self._update(blur_strength=int(value))
        if self.settings.background_mode == "blur":
            self.set_background_mode("blur")

    def toggle_blur(self) -> None:
        """Hotkey B: blur on, or back to the picture."""
        self.set_background_mode("image" if self.settings.background_mode == "blur" else "blur")

    def set_color(self, color: str) -> bool:
        spec = BackgroundSpec(mode="color", color=color)
        background = self._try_background(spec)
        if background is None:
            return False
        self.pipeline.set_background(background)
        self._update(background_mode="color", color=color)
        self._sync_mode_combo()
        return True

    def _on_pick_color(self) -> None:
        color = QColorDialog.getColor(QColor(self.settings.color), self, "Background colour")
        if color.isValid():
            self.set_color(color.name())

    def set_video_background(self, path: str) -> bool:
        background = self._try_background(BackgroundSpec(mode="video", path=path))
        if background is None:
            self._sync_mode_combo()
            return False
        self.pipeline.set_background(background)
        self._update(background_mode="video", video_background_path=path)
        self._sync_mode_combo()
        return True

    def _on_pick_video(self) -> None:
        pattern = " ".join("*" + s for s in VIDEO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Background video", "", f"Videos ({pattern})")
        if path:
            self.set_video_background(path)
        else:
            self._sync_mode_combo()

    @property
    def background(self) -> Background:
        return self.pipeline.processor.compositor.background

    # ------------------------------------------------------------------------------------------- outputs
    def set_virtual_camera(self, on: bool) -> None:
        """Start/stop the virtual camera. Opening happens on the worker; failures come back as events."""
        if on and self.vcam_sink is None:
            fps = self.pipeline.source_info.fps if self.pipeline.source_info else float(self.settings.fps)
            self.vcam_sink = VirtualCameraSink(fps=fps, backend=self.settings.virtual_camera_backend or None,
                                               device=self.settings.virtual_camera_device or None)
            self.pipeline.add_sink(self.vcam_sink)
            self.controls.vcam_status.setText("starting...")
        elif not on and self.vcam_sink is not None:
            self.pipeline.remove_sink(self.vcam_sink)
            self.vcam_sink = None
            self.controls.vcam_status.setText("stopped")
        self._sync_toggle(self.controls.vcam_button, self.vcam_sink is not None,
                          "Stop virtual camera", "Start virtual camera")

    def set_recording(self, on: bool) -> None:
        if on and self.recorder is None:
            folder = Path(self.settings.record_dir or QStandardPaths.writableLocation(
                QStandardPaths.StandardLocation.MoviesLocation) or Path.home())
            path = folder / time.strftime("mattecam-%Y%m%d-%H%M%S.mp4")
            fps = self.pipeline.source_info.fps if self.pipeline.source_info else float(self.settings.fps)
            try:
                self.recorder = RecorderSink(path, fps=fps, realtime=True)
            except SinkError as exc:
                self.notice.show_message("error", str(exc))
            else:
                self.pipeline.add_sink(self.recorder)
                self.controls.record_status.setText(f"recording to {path}")
        elif not on and self.recorder is not None:
            self.pipeline.remove_sink(self.recorder)
            self.controls.record_status.setText(f"saved {self.recorder.path}")
            self.recorder = None
        self._sync_toggle(self.controls.record_button, self.recorder is not None, "Stop recording", "Start recording")

    @staticmethod
    def _sync_toggle(button: QPushButton, on: bool, on_text: str, off_text: str) -> None:
        button.blockSignals(True)
        button.setChecked(on)
        button.setText(on_text if on else off_text)
        button.blockSignals(False)

    # ---------------------------------------------------------------------------------- pipeline callbacks
    def _on_event(self, event: PipelineEvent) -> None:
        if self._closed:
            return
        if event.topic == "source":
            self._on_source_event(event)
        elif event.topic == "sink:virtual camera":
            self.vcam_sink = None
            self.controls.vcam_status.setText("unavailable")
            self._sync_toggle(self.controls.vcam_button, False, "Stop virtual camera", "Start virtual camera")
            self.notice.show_message("error", f"{event.message}\nThe preview keeps running.")
        elif event.topic == "sink:recorder":
            self.recorder = None
            self.controls.record_status.setText("recording stopped")
            self._sync_toggle(self.controls.record_button, False, "Stop recording", "Start recording")
            self.notice.show_message("error", event.message)
        elif event.level in ("warning", "error"):
            self.notice.show_message(event.level, event.message)
        else:
            self.statusBar().showMessage(event.message, 4000)

    def _on_source_event(self, event: PipelineEvent) -> None:
        if event.reason == "open":
            self.notice.clear("source")
            self.statusBar().showMessage(event.message, 4000)
            return
        if event.reason in ("no_camera", "busy") and self.settings.source_kind == "camera":
            self.controls.source_info_label.setText("no picture")
            self.preview.show_placeholder(f"{event.message}\n\nPick another camera on the right, "
                                          "or use the bundled demo clip (button above).")
            self.notice.show_message(event.level, f"{event.message} The app keeps trying; meanwhile you can "
                                     "watch the bundled demo clip.", ("Use the demo clip", self.use_demo_clip),
                                     topic="source")
        else:
            self.notice.show_message(event.level, event.message, topic="source")

    def _on_preview_ready(self) -> None:
        preview = self.preview_sink.take()
        if preview is None or self._closed:
            return
        self._last_preview = preview
        self._render_preview()
        if self.vcam_sink is not None:
            self.controls.vcam_status.setText(self.vcam_sink.status)

    def _render_preview(self) -> None:
        preview = self._last_preview
        if preview is None:
            return
        image = render_view(preview, self.settings.preview_view, self.settings.mirror_preview)
        lines = stats_lines(preview, bool(getattr(self.engine, "use_cra", False)))
        self.preview.show_frame(image, lines, preview.warning)

    def _on_view(self) -> None:
        self._update(preview_view=self.view_combo.currentData())
        self._render_preview()

    def _on_mirror(self, on: bool) -> None:
        self._update(mirror_preview=bool(on))
        self._render_preview()

    # ---------------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout: float = 1.0) -> bool:
        """Stop the pipeline (camera and virtual camera released) and save settings. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        self._save_timer.stop()
        self.save_settings_now()
        return self.pipeline.stop(timeout)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()
