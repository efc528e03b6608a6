"""The viewer's main window and :func:`run_viewer` (what ``lowlight-rt --camera 0`` opens)."""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
import traceback
import weakref
from pathlib import Path
from typing import Any

from PyQt6.QtCore import Qt, QTimer, QUrl
from PyQt6.QtGui import (QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence,
                         QMouseEvent)
from PyQt6.QtWidgets import (QApplication, QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel,
                             QMainWindow, QSlider, QStyle, QToolBar, QVBoxLayout, QWidget)

from lowlight_rt.config import RunConfig
from lowlight_rt.errors import EXIT_INTERNAL, EXIT_OK, EXIT_TERMINATED
from lowlight_rt.jobs import OverloadMonitor

from .meters import LatencyMeter, RateMeter
from .options import ViewerOptions
from .overlays import Banner, HelpOverlay
from .session import ViewerSession, describe_spec, save_snapshot
from .shortcuts import SHORTCUTS
from .video_view import SPLIT, VideoView

log = logging.getLogger("lowlight_rt.ui")

VIDEO_FILTER = "Videos (*.mp4 *.mkv *.mov *.avi *.webm *.ts *.m4v);;Images (*.png *.jpg *.jpeg);;All files (*)"
PROC_SIZES = (180, 240, 360, 480, 540, 720, 1080)
FRAME_POLL_MS = 4
STATS_MS = 250

_WINDOWS: "weakref.WeakSet[MainWindow]" = weakref.WeakSet()


class SeekSlider(QSlider):
    """Horizontal slider in milliseconds; a click jumps to where it lands (then emits released)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.width() > 0:
            value = QStyle.sliderValueFromPosition(self.minimum(), self.maximum(),
                                                   int(event.position().x()), self.width())
            self.setValue(value)
        super().mousePressEvent(event)


def _fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class MainWindow(QMainWindow):
    """Input and enhanced video side by side (or split), controls, statistics and recording.

    A QTimer in the GUI thread pulls the pipeline's newest pair and hands it to :class:`VideoView`;
    everything else (capture, inference, encoding) runs in the runtime's threads.
    """

    def __init__(self, options: ViewerOptions | None = None) -> None:
        super().__init__()
        self.options = options or ViewerOptions()
        self.exit_code = EXIT_OK
        self.shown = 0
        self.display_rate = RateMeter(2.0)
        self.latency = LatencyMeter(120)
        self._last_seq: int | None = None
        self._current: Any = None
        self._quitting = False
        self._seeking = False
        self.last_snapshot: tuple[Path, Path] | None = None
        self.last_recording: Path | None = None
        #: "encoding overloaded" check of a live recording (the headless job's, shown in the status bar)
        self._overload: OverloadMonitor | None = None
        self.overload_message: str | None = None
        self.session = ViewerSession(self.options, self)
        _WINDOWS.add(self)

        self.setWindowTitle("lowlight-rt")
        self.resize(*self.options.size)
        self.setAcceptDrops(True)

        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.banner = Banner(central)
        self.view = VideoView(central)
        self.view.set_mode(self.options.mode)
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.seek_row = QWidget(central)
        seek_lay = QHBoxLayout(self.seek_row)
        seek_lay.setContentsMargins(6, 2, 6, 2)
        self.seek_slider = SeekSlider(self.seek_row)
        self.seek_label = QLabel("--:-- / --:--", self.seek_row)
        seek_lay.addWidget(self.seek_slider, 1)
        seek_lay.addWidget(self.seek_label)
        self.seek_row.hide()
        lay.addWidget(self.banner)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.seek_row)
        self.setCentralWidget(central)
        self.help = HelpOverlay(self.view)

        self.actions_by_name: dict[str, QAction] = {}
        self._make_actions()
        self._make_toolbar()
        self.stats_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.stats_label, 1)

        s = self.session
        s.message.connect(self._on_message)
        s.opened.connect(self._on_opened)
        s.engine_changed.connect(self._refresh_engine_controls)
        s.failed.connect(self._on_failed)
        s.recording_changed.connect(self._on_recording_changed)
        self.view.frame_painted.connect(self._on_frame_painted)
        self.seek_slider.sliderPressed.connect(self._seek_pressed)
        self.seek_slider.sliderReleased.connect(self._seek_released)

        self.frame_timer = QTimer(self)
        self.frame_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.frame_timer.timeout.connect(self._pull_frame)
        self.stats_timer = QTimer(self)
        self.stats_timer.timeout.connect(self._refresh_stats)

    # ------------------------------------------------------------------ construction
    def _make_actions(self) -> None:
        slots = {
            "pause": self.toggle_pause, "view_mode": self.toggle_view_mode,
            "fullscreen": self.toggle_fullscreen, "denoise": self.toggle_denoise,
            "strength_up": lambda: self.nudge_strength(+0.1),
            "strength_down": lambda: self.nudge_strength(-0.1),
            "seek_back": lambda: self.seek_relative(-5.0),
            "seek_forward": lambda: self.seek_relative(+5.0),
            "proc_down": lambda: self.step_proc_size(-1), "proc_up": lambda: self.step_proc_size(+1),
            "next_model": self.next_model, "open_checkpoint": self.open_checkpoint_dialog,
            "device": self.toggle_device, "snapshot": self.snapshot,
            "record": lambda: self.toggle_recording(side_by_side=False),
            "record_sbs": lambda: self.toggle_recording(side_by_side=True),
            "open_file": self.open_file_dialog, "open_url": self.open_url_dialog,
            "overlay": self.toggle_overlay, "help": self.help.toggle, "quit": self.close,
        }
        for sc in SHORTCUTS:
            act = QAction(sc.help, self)
            act.setShortcuts([QKeySequence(k) for k in sc.keys])
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setToolTip(f"{sc.help} ({' / '.join(sc.keys)})")
            act.triggered.connect(slots[sc.name])
            self.addAction(act)
            self.actions_by_name[sc.name] = act
        for name in ("pause", "view_mode", "record", "record_sbs", "fullscreen", "denoise"):
            self.actions_by_name[name].setCheckable(True)
        self.actions_by_name["denoise"].setChecked(self.options.run.denoise)
        texts = {"open_file": "Open file", "open_url": "Open URL", "pause": "Pause", "view_mode": "Split",
                 "denoise": "Denoise",
                 "fullscreen": "Fullscreen", "snapshot": "Snapshot", "record": "Record",
                 "record_sbs": "Record side by side", "help": "Help", "open_checkpoint": "Open checkpoint"}
        for name, text in texts.items():
            self.actions_by_name[name].setText(text)
        self.actions_by_name["view_mode"].setChecked(self.view.mode == SPLIT)

    def _make_toolbar(self) -> None:
        tb = QToolBar("Controls", self)
        tb.setMovable(False)
        self.toolbar = tb
        a = self.actions_by_name
        for name in ("open_file", "open_url"):
            tb.addAction(a[name])
        tb.addSeparator()
        for name in ("pause", "view_mode", "fullscreen"):
            tb.addAction(a[name])
        tb.addSeparator()
        tb.addWidget(QLabel(" Strength ", tb))
        self.strength_slider = QSlider(Qt.Orientation.Horizontal, tb)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setFixedWidth(120)
        self.strength_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.strength_slider.setValue(round(self.options.run.strength * 100))
        self.strength_slider.valueChanged.connect(self._on_strength)
        self.strength_value = QLabel(f"{self.options.run.strength:.2f} ", tb)
        tb.addWidget(self.strength_slider)
        tb.addWidget(self.strength_value)
        tb.addAction(a["denoise"])
        tb.addWidget(QLabel(" Size ", tb))
        self.proc_combo = QComboBox(tb)
        self.proc_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.proc_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.proc_combo.setToolTip("Processing size: the short side the network runs at ([ / ])")
        self.proc_combo.activated.connect(self._on_proc_combo)
        tb.addWidget(self.proc_combo)
        tb.addWidget(QLabel(" Model ", tb))
        self.model_combo = QComboBox(tb)
        self.model_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.model_combo.setMinimumContentsLength(12)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_combo.activated.connect(self._on_model_combo)
        tb.addWidget(self.model_combo)
        tb.addWidget(QLabel(" Device ", tb))
        self.device_combo = QComboBox(tb)
        self.device_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.device_combo.addItems(["cpu", "cuda"])
        self.device_combo.setEnabled(_cuda_available())
        self.device_combo.setToolTip("Compute device (D)" if _cuda_available() else "CUDA not available")
        self.device_combo.activated.connect(lambda i: self.session.set_device(self.device_combo.itemText(i)))
        tb.addWidget(self.device_combo)
        tb.addSeparator()
        for name in ("snapshot", "record", "record_sbs", "help"):
            tb.addAction(a[name])
        self.addToolBar(tb)
        #: checkpoint files used in this window (``--model file.pt``, "Open checkpoint"): they stay in
        #: the picker after switching away, so M cycles back to them
        self._opened_checkpoints: list[str] = []
        self._fill_model_combo()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the timers and open the source given in the options (if any)."""
        self.frame_timer.start(FRAME_POLL_MS)
        self.stats_timer.start(STATS_MS)
        if self.options.fullscreen:
            self.toggle_fullscreen()
        if self.options.run.source is not None:
            self.open_source(self.options.run.source)

    def open_source(self, spec: Any) -> None:
        """Play ``spec``: a file path, URL, camera index, or a factory returning a Source."""
        self._last_seq = None
        self.view.clear()
        self.seek_row.hide()
        self.actions_by_name["pause"].setChecked(False)
        self.setWindowTitle(f"lowlight-rt \u2014 {describe_spec(spec)}")
        self.session.open(spec)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._quitting = True
        if self.options.screenshot:
            try:
                Path(self.options.screenshot).parent.mkdir(parents=True, exist_ok=True)
                if not self.grab().save(str(self.options.screenshot)):
                    log.error("cannot save screenshot %s", self.options.screenshot)
            except Exception:  # noqa: BLE001 - quitting must go on
                log.exception("screenshot failed")
        self.frame_timer.stop()
        self.stats_timer.stop()
        self.session.close()
        event.accept()

    def quit_with(self, code: int) -> None:
        self.exit_code = code
        if not self._quitting:
            self._quitting = True
            QTimer.singleShot(0, self.close)

    # ------------------------------------------------------------------ frames
    def _pull_frame(self) -> None:
        s = self.session
        if s.paused:  # the picture freezes at once (frames already in flight are not shown)
            return
        pair = s.latest()
        if pair is None or pair.seq == self._last_seq:
            return
        self._last_seq = pair.seq
        self._current = pair
        self.view.set_frame(pair.frame.image, pair.enhanced, pair.frame.capture_time)

    def _on_frame_painted(self, latency: float) -> None:
        self.shown += 1
        self.display_rate.tick()
        if math.isfinite(latency):
            self.latency.add(latency)
        q = self.options.quit_after
        if q is not None and self.shown >= q and not self._quitting:
            self.quit_with(self.exit_code)

    # ------------------------------------------------------------------ statistics
    def overlay_lines(self) -> list[str]:
        s = self.session
        st = s.stats()
        lat, med = self.latency.last, self.latency.median()

        def fps(v: Any) -> str:
            return f"{v:5.1f}" if isinstance(v, (int, float)) and v is not None else "  -  "

        lines = [
            f"capture {fps(st.get('capture_fps'))} fps  inference {fps(st.get('inference_fps'))} fps  "
            f"display {self.display_rate.rate():5.1f} fps",
            f"latency {(lat or 0) * 1000:4.0f} ms (median {(med or 0) * 1000:4.0f})  "
            f"dropped {st.get('dropped') or 0}" + (f"  decode errors {st['decode_errors']}"
                                                   if st.get("decode_errors") else ""),
        ]
        e = s.engine
        if e is not None:
            proc = self._proc_text()
            runtime = " onnxruntime" if getattr(e, "network_runtime", None) == "onnxruntime" else ""
            lines.append(f"{getattr(e, 'device_name', '?')} {getattr(e, 'precision', '?')}{runtime}  "
                         f"model {s.model_name}  proc {proc}  strength {s.config.strength:.2f}  "
                         f"{self._denoise_text(e)}")
        if s.recording and s.recording_path is not None:
            lines.append(f"\u25cf REC {s.recording_path.name}")
        if s.paused:
            lines.append("paused")
        return lines

    @staticmethod
    def _denoise_text(engine: Any) -> str:
        """``denoise off``, or the temporal denoiser's state: its strength now (0-100 %) and the noise it measured."""
        denoiser = getattr(engine, "denoiser", None)
        if not getattr(engine, "denoise", False) or denoiser is None:
            return "denoise off"
        return f"denoise {denoiser.strength:4.0%} (noise {denoiser.sigma:.1f})"

    def _proc_text(self) -> str:
        s = self.session
        if s.engine is None or s.info is None:
            return "-"
        try:
            pw, ph = s.engine.proc_shape(s.info.width, s.info.height)
        except Exception:  # noqa: BLE001 - purely informative
            return "-"
        return f"{pw}x{ph}"

    def _refresh_stats(self) -> None:
        self.session.poll()
        self._check_overload()
        lines = self.overlay_lines()
        self.view.overlay_lines = lines
        self.stats_label.setText("   |   ".join(lines))
        if not self.view.has_frame() or self.session.paused:
            self.view.update()
        self._refresh_seek()
        s = self.session
        if s.ended and self.options.quit_after is not None and not self._quitting:
            self.quit_with(self.exit_code)

    def _check_overload(self) -> None:
        """While a live source is recorded: say once, in the status bar, when writing cannot keep up."""
        s = self.session
        pipeline = s.pipeline
        if not (s.recording and s.live and pipeline is not None):
            self._overload = None
            return
        if self._overload is None:
            self._overload = OverloadMonitor(getattr(s.info, "fps", None))
        message = self._overload.update(pipeline.stats)
        if message is not None:
            self.overload_message = message
            log.warning("%s", message)
            self.statusBar().showMessage(message, 15000)

    def _refresh_seek(self) -> None:
        s = self.session
        duration = getattr(s.info, "duration", None) if s.info is not None else None
        if not s.can_seek or not duration:
            self.seek_row.hide()
            return
        if self.seek_row.isHidden() and not self.isFullScreen():
            self.seek_row.show()
        self.seek_slider.setRange(0, int(duration * 1000))
        pos = s.position(self._current.frame) if self._current is not None else None
        if pos is not None and not self._seeking:
            self.seek_slider.blockSignals(True)
            self.seek_slider.setValue(int((pos % duration) * 1000) if duration else 0)
            self.seek_slider.blockSignals(False)
        self.seek_label.setText(f"{_fmt_time(pos % duration if pos is not None else None)} / "
                                f"{_fmt_time(duration)}")

    # ------------------------------------------------------------------ session signals
    def _on_message(self, text: str, kind: str) -> None:
        if kind == "clear":
            self.banner.dismiss()
        elif kind == "clear-info":
            if self.banner.kind == "info":
                self.banner.dismiss()
        else:
            self.banner.show_message(text, kind)
            (log.warning if kind == "error" else log.info)("%s", text)

    def _on_opened(self, info: Any) -> None:
        self._last_seq = None
        self._refresh_engine_controls()

    def _on_failed(self, error: BaseException) -> None:
        if self.options.quit_after is not None:
            self.quit_with(int(getattr(error, "exit_code", EXIT_INTERNAL)))

    def _on_recording_changed(self, path: Any) -> None:
        a = self.actions_by_name
        if path is None:
            a["record"].setChecked(False)
            a["record_sbs"].setChecked(False)
        else:
            self.statusBar().showMessage(f"Recording to {path}", 3000)

    def _refresh_engine_controls(self) -> None:
        s = self.session
        e = s.engine
        self._fill_model_combo()
        self.proc_combo.clear()
        model = getattr(e, "model", None)
        default = getattr(model, "default_proc_size", None)
        current = s.config.proc_size if s.config.proc_size is not None else (default or 0)
        # a size given on the command line (--proc-size 64) is listed too, so the picker shows it
        sizes = sorted(set(PROC_SIZES) | {v for v in (default, current) if v})
        for size in sizes:
            self.proc_combo.addItem(f"{size}" + (" (default)" if size == default else ""), size)
        self.proc_combo.addItem("full" + (" (default)" if not default else ""), 0)
        idx = self.proc_combo.findData(current)
        self.proc_combo.setCurrentIndex(idx if idx >= 0 else self.proc_combo.count() - 1)
        if e is not None:
            dev = str(getattr(e, "device_name", "cpu"))
            self.device_combo.setCurrentIndex(1 if dev.startswith("cuda") else 0)

    def _fill_model_combo(self) -> None:
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        try:
            from lowlight_rt.models.catalog import list_available_models

            available = list_available_models()
        except Exception as exc:  # noqa: BLE001 - the picker still offers "Open checkpoint"
            log.warning("cannot list models: %s", exc)
            available = {}
        items = dict(available) if isinstance(available, dict) else {n: "" for n in available}
        current = self.session.config.model
        for name, desc in items.items():
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, str(desc), Qt.ItemDataRole.ToolTipRole)
        if current and current not in items and current not in self._opened_checkpoints:
            self._opened_checkpoints.append(current)
        for spec in self._opened_checkpoints:
            if combo.findData(spec) < 0:
                combo.addItem(Path(spec).name if Path(spec).suffix else spec, spec)
        combo.addItem("Open checkpoint\u2026", None)
        idx = combo.findData(current) if current else -1
        if idx < 0 and self.session.model_name:
            idx = combo.findText(self.session.model_name)
        if idx < 0 and current is None:
            try:
                from lowlight_rt.models import DEFAULT_MODEL

                idx = combo.findData(DEFAULT_MODEL)
            except ImportError:
                idx = -1
        combo.setCurrentIndex(max(0, idx))
        combo.blockSignals(False)

    # ------------------------------------------------------------------ controls
    def _on_strength(self, value: int) -> None:
        self.session.set_strength(value / 100.0)
        self.strength_value.setText(f"{value / 100.0:.2f} ")

    def toggle_denoise(self) -> None:
        """Temporal denoising on / off (the action's check state is the setting)."""
        self.session.set_denoise(self.actions_by_name["denoise"].isChecked())

    def set_strength(self, value: float) -> None:
        self.strength_slider.setValue(round(min(1.0, max(0.0, value)) * 100))

    def nudge_strength(self, delta: float) -> None:
        self.set_strength(self.strength_slider.value() / 100.0 + delta)

    def _on_proc_combo(self, index: int) -> None:
        self.session.set_proc_size(self.proc_combo.itemData(index))

    def step_proc_size(self, step: int) -> None:
        n = self.proc_combo.count()
        if n == 0:
            return
        idx = min(n - 1, max(0, self.proc_combo.currentIndex() + step))
        self.proc_combo.setCurrentIndex(idx)
        self._on_proc_combo(idx)

    def _on_model_combo(self, index: int) -> None:
        spec = self.model_combo.itemData(index)
        if spec is None:
            self.open_checkpoint_dialog()
        else:
            self.session.set_model(spec)

    def next_model(self) -> None:
        n = self.model_combo.count() - 1  # the last entry is "Open checkpoint..."
        if n <= 0:
            return
        idx = (self.model_combo.currentIndex() + 1) % n
        self.model_combo.setCurrentIndex(idx)
        self._on_model_combo(idx)

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", "",
                                              "Checkpoints (*.pt *.pth *.ckpt);;All files (*)")
        if path:
            self.session.set_model(path)
        else:
            self._fill_model_combo()

    def toggle_device(self) -> None:
        if not _cuda_available():
            self.statusBar().showMessage("CUDA is not available on this machine", 3000)
            return
        dev = str(getattr(self.session.engine, "device_name", "cpu"))
        self.session.set_device("cpu" if dev.startswith("cuda") else "cuda")

    def toggle_pause(self) -> None:
        paused = not self.session.paused
        self.session.set_paused(paused)
        self.actions_by_name["pause"].setChecked(paused)

    def seek_relative(self, delta: float) -> None:
        s = self.session
        if not s.can_seek:
            return
        pos = s.position(self._current.frame) if self._current is not None else 0.0
        duration = getattr(s.info, "duration", None)
        if pos is not None and duration:
            pos = pos % duration
        s.seek((pos or 0.0) + delta)

    def _seek_pressed(self) -> None:
        self._seeking = True

    def _seek_released(self) -> None:
        self._seeking = False
        self.session.seek(self.seek_slider.value() / 1000.0)

    def toggle_view_mode(self) -> None:
        mode = self.view.toggle_mode()
        self.actions_by_name["view_mode"].setChecked(mode == SPLIT)

    def toggle_fullscreen(self) -> None:
        full = not self.isFullScreen()
        self.toolbar.setVisible(not full)
        self.statusBar().setVisible(not full)
        if full:
            self.seek_row.hide()
            self.showFullScreen()
        else:
            self.showNormal()
        self.actions_by_name["fullscreen"].setChecked(full)

    def toggle_overlay(self) -> None:
        self.view.overlay_visible = not self.view.overlay_visible
        self.view.update()

    def snapshot(self) -> tuple[Path, Path] | None:
        """Save the pair on screen as ``*_input.png`` and ``*_enhanced.png`` in the output folder."""
        images = self.view.current_images()
        if images is None:
            self.statusBar().showMessage("Nothing to snapshot yet", 3000)
            return None
        try:
            paths = save_snapshot(self.options.output_dir, *images)
        except Exception as exc:  # noqa: BLE001 - shown, the viewer goes on
            self._on_message(f"Snapshot failed: {exc}", "error")
            return None
        self.last_snapshot = paths
        self.statusBar().showMessage(f"Saved {paths[0]} and {paths[1].name}", 5000)
        return paths

    def toggle_recording(self, side_by_side: bool = False) -> Path | None:
        """Start recording to a new MP4 in the output folder, or stop (finalise) the current one."""
        s = self.session
        if s.recording:
            path = s.stop_recording()
            self.last_recording = path
            self.statusBar().showMessage(f"Saved recording {path}", 5000)
            return path
        stem = time.strftime("recording-%Y%m%d-%H%M%S") + ("-sbs" if side_by_side else "")
        path = Path(self.options.output_dir) / f"{stem}.mp4"
        try:
            Path(self.options.output_dir).mkdir(parents=True, exist_ok=True)
            s.start_recording(path, side_by_side=side_by_side)
        except Exception as exc:  # noqa: BLE001
            self._on_message(f"Cannot record: {exc}", "error")
            self._on_recording_changed(None)
            return None
        self.actions_by_name["record_sbs" if side_by_side else "record"].setChecked(True)
        return path

    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", VIDEO_FILTER)
        if path:
            self.open_source(path)

    def open_url_dialog(self) -> None:
        url, ok = QInputDialog.getText(self, "Open stream", "Stream URL (rtsp://, http(s)://):")
        if ok and url.strip():
            self.open_source(url.strip())

    # ------------------------------------------------------------------ drag and drop, keys
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        urls: list[QUrl] = event.mimeData().urls()
        if not urls:
            return
        url = urls[0]
        self.open_source(url.toLocalFile() if url.isLocalFile() else url.toString())
        event.acceptProposedAction()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            if self.help.isVisible():
                self.help.hide()
            elif self.isFullScreen():
                self.toggle_fullscreen()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.help.isVisible():
            self.help.setGeometry(self.view.rect())

    # ------------------------------------------------------------------ errors from anywhere
    def report_exception(self, exc_type: type[BaseException], exc: BaseException) -> None:
        self._on_message(f"Internal error (the viewer keeps running): {exc_type.__name__}: {exc}", "error")


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def install_excepthook() -> Any:
    """Route uncaught exceptions (e.g. raised in a Qt slot) to the log and the open windows' banner.

    PyQt6 aborts the process on an exception in a slot unless ``sys.excepthook`` is replaced; this
    hook logs the traceback and shows one line in every viewer window instead. Returns the previous
    hook (to restore it).
    """
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        log.error("unhandled exception in the viewer:\n%s",
                  "".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
        for window in list(_WINDOWS):
            try:
                window.report_exception(exc_type, exc)
            except Exception:  # noqa: BLE001 - never raise from the hook
                pass

    hook.previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook
    return previous


def run_viewer(options: ViewerOptions | RunConfig | dict[str, Any] | None = None, **kwargs: Any) -> int:
    """Open the viewer and block until it is closed; returns the exit code.

    ``options``: a :class:`ViewerOptions`, a :class:`RunConfig` (the CLI's), a dict, or ``None``;
    keyword arguments override it (``source=``, ``model=``, ``quit_after=``, ``screenshot=``...;
    an unknown one raises ``TypeError``).
    Returns 0, or the error's exit code when a script run (``quit_after``) hit an unrecoverable error.
    """
    opts = ViewerOptions.from_any(options, **kwargs)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="lowlight-rt viewer: %(message)s")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("lowlight-rt")
    previous = install_excepthook()
    previous_sigint = signal.getsignal(signal.SIGINT)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    terminated = False

    def on_sigterm(*_: Any) -> None:  # like Ctrl-C (the recording is finalised), but exit 143
        nonlocal terminated
        terminated = True
        app.quit()

    try:
        signal.signal(signal.SIGINT, lambda *_: app.quit())
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        previous_sigint = previous_sigterm = None
    # Qt's event loop does not run Python code on its own: a timer lets the signal handlers run.
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(200)
    window = MainWindow(opts)
    try:
        window.show()
        window.start()
        app.exec()
        if not window._quitting:  # the event loop ended without the window closing (Ctrl-C, SIGTERM)
            window.close()
        if terminated:
            print("lowlight-rt: terminated (SIGTERM): viewer closed, recordings finalised", file=sys.stderr)
            return EXIT_TERMINATED
        return window.exit_code
    finally:
        heartbeat.stop()
        window.deleteLater()
        sys.excepthook = previous
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
