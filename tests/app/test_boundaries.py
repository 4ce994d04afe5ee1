"""The pipeline side of the app stays free of Qt (and of torch at import), so headless use needs neither."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLAIN_MODULES = ["app.pipeline", "app.capture", "app.sources", "app.sinks", "app.compositor", "app.backgrounds",
                 "app.smoothing", "app.processing", "app.preview_views", "app.settings", "app.engine_loader",
                 "app.commands.stream", "app.commands.render", "app.commands.gui", "app.cli"]


def test_pipeline_modules_import_without_qt_or_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PLAIN_MODULES)
            + "bad = sorted({m.split('.')[0] for m in sys.modules} & {'PySide6', 'torch'})\n"
            + "print(','.join(bad))\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
