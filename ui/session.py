"""The runtime objects behind one viewer window: engine, source, pipeline, recording, retries.

All slow or blocking work (loading a model, opening a camera or a stream, stopping threads) runs in
short-lived worker threads; results come back to the GUI thread through a queued Qt signal. The GUI
thread only reads :meth:`ViewerSession.latest` and paints. The session never runs frames itself:
everything flows through :class:`lowlight_rt.pipeline.Pipeline` (no second pipeline here).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from lowlight_rt.errors import LowlightError, ModelError

from .options import ViewerOptions

log = logging.getLogger("lowlight_rt.ui")


@dataclass
class LatestPair:
    """The newest processed pair: ``seq`` increases by one per pair the pipeline produced."""

    seq: int
    frame: Any          # lowlight_rt.frames.Frame
    enhanced: np.ndarray


def describe_spec(spec: Any) -> str:
    """Short human name of a source spec, for banners and the title bar."""
    if callable(spec):
        return getattr(spec, "description", None) or getattr(spec, "__name__", "custom source")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.startswith("camera:")):
        return f"camera {str(spec).removeprefix('camera:')}"
    if isinstance(spec, str) and "://" in spec:
        return spec
    return Path(str(spec)).name


def is_live_spec(spec: Any) -> bool:
    """Cameras, streams, ``fake:`` and custom factories are live (reconnected when they fail)."""
    if callable(spec) or isinstance(spec, int):
        return True
    try:
        from lowlight_rt.sources import source_kind

        return source_kind(spec) in ("camera", "stream", "fake")
    except Exception:  # noqa: BLE001 - an unsupported spec fails later, when opened
        return False


def save_snapshot(directory: str | Path, image: np.ndarray, enhanced: np.ndarray,
                  stem: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>_input.png`` and ``<stem>_enhanced.png`` (both ``(H, W, 3)`` uint8 RGB)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if stem is None:
        stem = time.strftime("snapshot-%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    paths = (directory / f"{stem}_input.png", directory / f"{stem}_enhanced.png")
    for path, img in zip(paths, (image, enhanced)):
        if not cv2.imwrite(str(path), np.ascontiguousarray(img[..., ::-1])):
            raise OSError(f"cannot write {path}")
    return paths


class ViewerSession(QObject):
    """Owns the engine (kept across sources), the current source and its pipeline.

    Signals (all delivered in the GUI thread):
        message(str, str): ``(text, kind)`` for the banner; kind is ``"error"``, ``"info"`` or
            ``"clear"`` (hide the banner).
        opened(object): a new source runs; the argument is its ``SourceInfo``.
        engine_changed(): model, device, precision or processing size changed.
        failed(object): a non-recoverable error (exception); scripts quit on it.
        recording_changed(object): the recording path, or ``None`` when recording stopped.
    """

    message = pyqtSignal(str, str)
    opened = pyqtSignal(object)
    engine_changed = pyqtSignal()
    failed = pyqtSignal(object)
    recording_changed = pyqtSignal(object)
    _done = pyqtSignal(int, str, object, object)   # (token, what, result, error) from worker threads

    def __init__(self, options: ViewerOptions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.engine: Any = None
        self.model_name = ""
        self.pipeline: Any = None
        self.source: Any = None
        self.spec: Any = None
        self.info: Any = None
        self.live = False
        self.paused = False
        self.ended = False
        self.recording_path: Path | None = None
        self._record_sink: Any = None
        self._record_pending = options.record
        self._token = 0
        self._retry_delay = options.retry_delay
        self._retries = 0
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._reopen)
        self._done.connect(self._on_done)
        self.busy = False
        self.failed_error: BaseException | None = None
        self._engine_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[Any] = []
        self.failed.connect(self._remember_failure)

    def _remember_failure(self, error: BaseException) -> None:
        self.failed_error = error

    # ------------------------------------------------------------------ worker threads
    def _async(self, what: str, fn: Callable[[], Any], token: int | None = None) -> None:
        token = self._token if token is None else token

        def work() -> None:
            try:
                result, error = fn(), None
            except BaseException as exc:  # noqa: BLE001 - reported in the GUI thread
                result, error = None, exc
            self._done.emit(token, what, result, error)

        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(target=work, name=f"lowlight-ui-{what}", daemon=True)
        self._threads.append(t)
        t.start()

    def _on_done(self, token: int, what: str, result: Any, error: BaseException | None) -> None:
        handler = getattr(self, f"_done_{what}")
        handler(token, result, error)

    # ------------------------------------------------------------------ engine
    def _effective_proc_size(self) -> int | None:
        """Short side sources downsample to (``None`` = full resolution), as the engine resolves it."""
        return None if self.engine is None else self.engine.proc_size

    def _build_engine(self) -> tuple[Any, str]:
        from lowlight_rt.engine import Engine
        from lowlight_rt.models import DEFAULT_MODEL
        from lowlight_rt.models.hub import load_model

        spec = self.options.model or DEFAULT_MODEL
        model, info = load_model(spec)
        engine = Engine(model, device=self.options.device, fp16=self.options.fp16,
                        proc_size=self.options.proc_size, strength=self.options.strength)
        return engine, _model_label(spec, info)

    def _open_source(self, spec: Any) -> Any:
        proc = self._effective_proc_size()
        multiple = self.engine.size_multiple
        if callable(spec):
            return spec(proc_size=proc, size_multiple=multiple)
        from lowlight_rt.sources import open_source

        o = self.options
        camera: dict[str, Any] = {}
        if o.camera_size is not None:
            camera["width"], camera["height"] = o.camera_size
        if o.camera_fps is not None:
            camera["fps"] = o.camera_fps
        if o.pixel_format is not None:
            camera["pixel_format"] = o.pixel_format
        kwargs: dict[str, Any] = {"proc_size": proc, "size_multiple": multiple, "realtime": True,
                                  "loop": o.loop, "camera_options": camera or None}
        return open_source(spec, **kwargs)

    # ------------------------------------------------------------------ opening sources
    def open(self, spec: Any) -> None:
        """Stop what plays and open ``spec`` (path, URL, camera index or factory) in the background."""
        self._retry_timer.stop()
        self._retry_delay, self._retries = self.options.retry_delay, 0
        self.spec = spec
        self.live = is_live_spec(spec)
        self._start_open()

    def _start_open(self) -> None:
        self._stop_current()
        self._token += 1
        self.ended = False
        self.busy = True
        spec = self.spec
        self.message.emit(f"Opening {describe_spec(spec)}...", "info")

        token = self._token

        def work() -> tuple[Any, Any, str]:
            label = ""
            with self._engine_lock:
                if self.engine is None:
                    self.engine, label = self._build_engine()
                    self.model_name = label
            source = self._open_source(spec)
            try:
                from lowlight_rt.pipeline import Pipeline

                pipeline = Pipeline(source, self.engine)
                with self._pending_lock:
                    stale = self._closing or token != self._token
                    if not stale:
                        # close() stops pipelines whose hand-over to the GUI thread is still queued
                        self._pending.append(pipeline)
                if not stale:
                    pipeline.start()
            except BaseException:
                source.stop()
                raise
            if stale:
                source.stop()
                raise _Stale()
            return source, pipeline, label

        self._async("open", work)

    def _done_open(self, token: int, result: Any, error: BaseException | None) -> None:
        self.busy = False
        if error is not None:
            if token != self._token or isinstance(error, _Stale):
                return
            if self.engine is not None and self.model_name:
                self.engine_changed.emit()
            self._handle_failure(error, while_opening=True)
            return
        source, pipeline, label = result
        with self._pending_lock:
            if pipeline in self._pending:
                self._pending.remove(pipeline)
        if token != self._token or self._closing:
            self._stop_async(pipeline, source)
            return
        self.source, self.pipeline = source, pipeline
        self.info = source.info
        self.live = bool(getattr(self.info, "is_live", self.live))
        self.paused = False
        self.message.emit("", "clear")
        self.engine_changed.emit()
        self.opened.emit(self.info)
        if self._record_pending:
            path, self._record_pending = self._record_pending, None
            try:
                self.start_recording(path, side_by_side=self.options.side_by_side)
            except Exception as exc:  # noqa: BLE001 - shown in the banner, playback continues
                self.message.emit(f"Cannot record to {path}: {exc}", "error")

    def _reopen(self) -> None:
        if self.spec is not None and not self._closing:
            self._start_open()

    # ------------------------------------------------------------------ health
    def poll(self) -> None:
        """Check the pipeline's health (GUI timer, a few times a second): errors, end, recovery."""
        p = self.pipeline
        if p is None:
            return
        error = getattr(p, "error", None)
        if error is not None:
            self._handle_failure(error, while_opening=False)
            return
        if getattr(p, "finished", False):
            if self.live:
                self._handle_failure(LowlightError(f"{describe_spec(self.spec)}: stream ended"),
                                     while_opening=False)
            elif not self.ended:
                self.ended = True
                self.stop_recording()
                self.message.emit(f"End of {describe_spec(self.spec)}", "info")
            return
        if self._retries and _stat(p, "frames_out") > 0:
            self._retries, self._retry_delay = 0, self.options.retry_delay

    def _handle_failure(self, error: BaseException, *, while_opening: bool) -> None:
        if not isinstance(error, LowlightError):  # a bug or an unexpected library error: keep the trace
            log.debug("source failed", exc_info=error)
        self.stop_recording()
        self._stop_current()
        text = _one_line(error)
        if isinstance(error, ModelError) or self.engine is None:
            what = "Model error" if isinstance(error, ModelError) else "Cannot start the engine"
            self.message.emit(f"{what}: {text}", "error")
            self.failed.emit(error)
            return
        if not self.live:
            self.message.emit(f"{describe_spec(self.spec)}: {text}", "error")
            self.failed.emit(error)
            return
        self._retries += 1
        delay = self._retry_delay
        self._retry_delay = min(self.options.retry_max_delay, self._retry_delay * 2)
        self.message.emit(f"{describe_spec(self.spec)}: {text} \u2014 reconnecting in {delay:.1f} s "
                          f"(attempt {self._retries})", "error")
        if self.options.quit_after is not None and self._retries > 3:
            self.failed.emit(error)
            return
        self._retry_timer.start(int(delay * 1000))

    # ------------------------------------------------------------------ frames
    def latest(self) -> LatestPair | None:
        """The newest processed pair, or ``None`` before the first one."""
        p = self.pipeline
        if p is None:
            return None
        got = _latest_from_sink(p.latest)
        return None if got is None else LatestPair(*got)

    # ------------------------------------------------------------------ controls
    def set_strength(self, value: float) -> None:
        self.options.strength = min(1.0, max(0.0, float(value)))
        if self.engine is not None:
            self.engine.strength = self.options.strength

    def set_proc_size(self, proc_size: int | None) -> None:
        """``None`` = the model's default; ``0`` = full resolution; else the short side in pixels."""
        self.options.proc_size = proc_size
        if self.engine is not None:
            self.engine.set_proc_size(proc_size)
        if self.source is not None:
            self.source.set_proc_size(self._effective_proc_size())
        self.engine_changed.emit()

    def set_model(self, spec: str) -> None:
        """Load ``spec`` (name or checkpoint path) in the background, then swap it in."""
        from lowlight_rt.models.hub import load_model

        self.message.emit(f"Loading model {spec}...", "info")
        self._async("model", lambda: (spec, *load_model(spec)), token=-1)

    def _done_model(self, token: int, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.message.emit(f"Cannot load model: {_one_line(error)}", "error")
            self.engine_changed.emit()
            return
        spec, model, info = result
        self.options.model = spec
        if self.engine is None:
            return
        self.engine.set_model(model)
        self.model_name = _model_label(spec, info)
        self.set_proc_size(self.options.proc_size)
        self.message.emit(f"Model: {self.model_name}", "info")
        QTimer.singleShot(2000, self._clear_info)  # a bound method: the timer dies with the session

    def _clear_info(self) -> None:
        self.message.emit("", "clear-info")

    def set_device(self, device: str) -> None:
        if self.engine is None:
            self.options.device = device
            return
        self.message.emit(f"Switching to {device}...", "info")
        self._async("device", lambda: self.engine.set_device(device), token=-1)

    def _done_device(self, token: int, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.message.emit(f"Cannot switch device: {_one_line(error)}", "error")
        else:
            self.message.emit("", "clear")
        self.engine_changed.emit()

    @property
    def can_seek(self) -> bool:
        return self.source is not None and hasattr(self.source, "seek") and not self.live

    def set_paused(self, paused: bool) -> None:
        """Files: the source holds playback. Live sources: the picture freezes (capture goes on)."""
        self.paused = paused
        src = self.source
        if src is not None and not self.live and hasattr(src, "pause"):
            src.pause() if paused else src.resume()

    def seek(self, seconds: float) -> None:
        """Jump a file to ``seconds``; a running recording is finalised first (time goes back)."""
        if self.can_seek:
            if self.recording:
                path = self.stop_recording()
                self.message.emit(f"Recording stopped at the seek: {path}", "info")
            duration = getattr(self.info, "duration", None)
            if duration:
                seconds = min(seconds, max(0.0, duration - 0.05))
            self.source.seek(max(0.0, seconds))
            self.ended = False

    def position(self, frame: Any) -> float | None:
        if frame is None:
            return None
        pos = frame.extra.get("position") if getattr(frame, "extra", None) else None
        return float(pos) if pos is not None else frame.time

    # ------------------------------------------------------------------ recording
    @property
    def recording(self) -> bool:
        return self._record_sink is not None

    def start_recording(self, path: str | Path, *, side_by_side: bool = False) -> Path:
        """Record what plays from now on to ``path`` (MP4, through the runtime's VideoFileSink)."""
        if self.pipeline is None or self.info is None:
            raise LowlightError("nothing is playing")
        if self._record_sink is not None:
            self.stop_recording()
        from .recording import ViewerRecording

        path = Path(path)
        sink = ViewerRecording(path, self.info, live=self.live, side_by_side=side_by_side)
        self.pipeline.add_sink(sink)
        self._record_sink, self.recording_path = sink, path
        self.recording_changed.emit(path)
        return path

    def stop_recording(self) -> Path | None:
        """Stop and finalise the recording; returns its path (``None`` if none was running)."""
        sink, path = self._record_sink, self.recording_path
        if sink is None:
            return None
        self._record_sink, self.recording_path = None, None
        try:
            if self.pipeline is not None:
                self.pipeline.remove_sink(sink)
            else:
                sink.close()
        finally:
            self.recording_changed.emit(None)
        return path

    # ------------------------------------------------------------------ shutdown
    def _stop_current(self) -> None:
        pipeline, source = self.pipeline, self.source
        self.pipeline = self.source = None
        if pipeline is not None or source is not None:
            self._stop_async(pipeline, source)

    def _stop_async(self, pipeline: Any, source: Any) -> None:
        def work() -> None:
            if pipeline is not None:
                pipeline.stop()
            elif source is not None:
                source.stop()

        self._async("stopped", work, token=-1)

    def _done_stopped(self, token: int, result: Any, error: BaseException | None) -> None:
        if error is not None:
            log.warning("stopping the pipeline failed: %s", error)

    def close(self, timeout: float = 10.0) -> None:
        """Stop everything and wait for every thread this session started."""
        with self._pending_lock:
            self._closing = True
        self._retry_timer.stop()
        self._token += 1
        try:
            self.stop_recording()
        except Exception as exc:  # noqa: BLE001 - closing must go on
            log.warning("finalising the recording failed: %s", exc)
        pipeline, source = self.pipeline, self.source
        self.pipeline = self.source = None
        if pipeline is not None:
            pipeline.stop()
        elif source is not None:
            source.stop()
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for p in pending:  # opened, but the GUI thread never adopted them
            p.stop()
        self._threads = [t for t in self._threads if t.is_alive()]

    def stats(self) -> dict[str, Any]:
        """Pipeline counters for the overlay (empty when nothing plays)."""
        p = self.pipeline
        if p is None:
            return {}
        s = p.stats
        return {k: getattr(s, k, None) for k in ("frames_in", "frames_out", "dropped", "decode_errors",
                                                 "capture_fps", "inference_fps", "output_fps")}


class _Stale(Exception):
    """An open finished after the viewer moved on (another source, or closing)."""


def _stat(pipeline: Any, name: str) -> int:
    try:
        return int(getattr(pipeline.stats, name, 0) or 0)
    except Exception:  # noqa: BLE001
        return 0


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(error, LowlightError) else f"{type(error).__name__}: {msg}"


def _model_label(spec: str, info: Any) -> str:
    if isinstance(info, dict):
        for key in ("name", "label", "arch"):
            if info.get(key):
                return str(info[key])
    return Path(str(spec)).stem if ("/" in str(spec) or str(spec).endswith(".pt")) else str(spec)


def _latest_from_sink(latest: Any) -> tuple[int, Any, np.ndarray] | None:
    """Read ``(count, frame, enhanced)`` atomically from the pipeline's LatestFrameSink."""
    count, pair = latest.wait_newer(-1, timeout=0)
    if pair is None:
        return None
    return count, pair[0], pair[1]
