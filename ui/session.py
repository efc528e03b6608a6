"""The runtime objects behind one viewer window: engine, the current run, recording, reconnection.

Four small parts, each with one job:

* :class:`BackgroundTasks` runs slow or blocking work (loading a model, opening a camera or a
  stream, stopping threads) in short-lived threads and hands each result to an explicit callback
  in the GUI thread (a queued Qt signal);
* :class:`Recorder` adds / removes the record button's MP4 sink on the running pipeline;
* :class:`Reconnect` counts a live source's reconnection attempts and doubles the wait;
* :class:`ViewerSession` owns the engine (kept across sources) and the current
  :class:`~lowlight_rt.run.Run`, built by the runtime's :func:`~lowlight_rt.run.open_run` from the
  session's :class:`~lowlight_rt.config.RunConfig` (the same builder the CLI uses); it never runs
  frames itself.

The GUI thread only reads :meth:`ViewerSession.latest` and paints.
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

from lowlight_rt.config import RunConfig, SourceSpec
from lowlight_rt.inference import Engine
from lowlight_rt.errors import LowlightError, ModelError
from lowlight_rt.frames import Frame
from lowlight_rt.pipeline import Pipeline
from lowlight_rt.run import Run, is_live_spec, load_engine, model_label, open_run
from lowlight_rt.sources.base import Source, SourceInfo

from .options import ViewerOptions
from .recording import ViewerRecording

log = logging.getLogger("lowlight_rt.ui")

__all__ = ["ViewerSession", "BackgroundTasks", "Recorder", "Reconnect", "LatestPair", "describe_spec",
           "is_live_spec", "save_snapshot"]

Done = Callable[[Any, "BaseException | None"], None]
"""A background task's callback: ``(result, error)``, called in the GUI thread."""


@dataclass
class LatestPair:
    """The newest processed pair: ``seq`` increases by one per pair the pipeline produced."""

    seq: int
    frame: Frame
    enhanced: np.ndarray


def describe_spec(spec: SourceSpec | None) -> str:
    """Short human name of a source spec, for banners and the title bar."""
    if callable(spec):
        return getattr(spec, "description", None) or getattr(spec, "__name__", "custom source")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.startswith("camera:")):
        return f"camera {str(spec).removeprefix('camera:')}"
    if isinstance(spec, str) and "://" in spec:
        return spec
    return Path(str(spec)).name


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


class BackgroundTasks(QObject):
    """Runs functions in daemon threads; each result goes to its callback in the GUI thread."""

    _finished = pyqtSignal(object, object, object)  # (callback, result, error), queued to the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._threads: list[threading.Thread] = []
        self._finished.connect(self._deliver)

    def run(self, name: str, fn: Callable[[], Any], done: Done) -> None:
        """Run ``fn()`` in a thread named ``lowlight-ui-<name>``; then ``done(result, error)`` in the GUI thread."""
        def work() -> None:
            try:
                result, error = fn(), None
            except BaseException as exc:  # noqa: BLE001 - reported in the GUI thread
                result, error = None, exc
            self._finished.emit(done, result, error)

        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(target=work, name=f"lowlight-ui-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    @staticmethod
    def _deliver(done: Done, result: Any, error: BaseException | None) -> None:
        done(result, error)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds in all for every thread started here."""
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]


class Recorder:
    """The record button: a :class:`ViewerRecording` sink added to / removed from a running pipeline.

    Recordings use the run's x264 settings (``config.crf`` / ``preset`` / ``tune``).
    """

    def __init__(self, changed: Callable[[Path | None], None]) -> None:
        self._changed = changed
        self._sink: ViewerRecording | None = None
        self._pipeline: Pipeline | None = None
        self.path: Path | None = None

    @property
    def active(self) -> bool:
        return self._sink is not None

    @property
    def sink(self) -> ViewerRecording | None:
        return self._sink

    def start(self, pipeline: Pipeline, info: SourceInfo, config: RunConfig, path: str | Path, *,
              live: bool, side_by_side: bool) -> Path:
        if self._sink is not None:
            self.stop()
        path = Path(path)
        sink = ViewerRecording(path, info, live=live, side_by_side=side_by_side, crf=config.crf,
                               preset=config.preset, tune=config.tune)
        pipeline.add_sink(sink)
        self._sink, self._pipeline, self.path = sink, pipeline, path
        self._changed(path)
        return path

    def stop(self) -> Path | None:
        """Finalise the recording; returns its path (``None`` if none was running)."""
        sink, pipeline, path = self._sink, self._pipeline, self.path
        if sink is None:
            return None
        self._sink, self._pipeline, self.path = None, None, None
        try:
            if pipeline is not None:
                pipeline.remove_sink(sink)
            else:
                sink.close()
        finally:
            self._changed(None)
        return path


class Reconnect:
    """Reconnection of a live source: the attempt count and a wait that doubles up to a maximum."""

    def __init__(self, first_delay: float, max_delay: float) -> None:
        self.first_delay, self.max_delay = first_delay, max_delay
        self.attempts = 0
        self.delay = first_delay

    def reset(self) -> None:
        self.attempts, self.delay = 0, self.first_delay

    def next_delay(self) -> float:
        """Count one more attempt; returns how long to wait before it."""
        self.attempts += 1
        delay = self.delay
        self.delay = min(self.max_delay, self.delay * 2)
        return delay


class ViewerSession(QObject):
    """Owns the engine (kept across sources) and the current run, built from :attr:`config`.

    :attr:`config` is the session's :class:`RunConfig`; the controls replace it with a changed
    copy (strength, processing size, model, device) and apply the change to the engine.

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

    def __init__(self, options: ViewerOptions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.config: RunConfig = options.run
        self.engine: Engine | None = None
        self.model_name = ""
        self.run: Run | None = None
        self.spec: SourceSpec | None = None
        self.info: SourceInfo | None = None
        self.live = False
        self.paused = False
        self.ended = False
        self.busy = False
        self.failed_error: BaseException | None = None
        self.tasks = BackgroundTasks(self)
        self.recorder = Recorder(self.recording_changed.emit)
        self.reconnect = Reconnect(options.retry_delay, options.retry_max_delay)
        self._record_pending = self.config.out
        self._token = 0
        self._closing = False
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.timeout.connect(self._reopen)
        self._engine_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[Pipeline] = []
        self.failed.connect(self._remember_failure)

    def _remember_failure(self, error: BaseException) -> None:
        self.failed_error = error

    # ------------------------------------------------------------------ the current run
    @property
    def pipeline(self) -> Pipeline | None:
        return None if self.run is None else self.run.pipeline

    @property
    def source(self) -> Source | None:
        return None if self.run is None else self.run.source

    # ------------------------------------------------------------------ opening sources
    def open(self, spec: SourceSpec) -> None:
        """Stop what plays and open ``spec`` (path, URL, camera index or opener) in the background."""
        self._retry_timer.stop()
        self.reconnect.reset()
        self.spec = spec
        self.config = self.config.replace(source=spec)
        self.live = is_live_spec(spec)
        self._start_open()

    def _start_open(self) -> None:
        self._stop_current()
        self._token += 1
        self.ended = False
        self.busy = True
        self.message.emit(f"Opening {describe_spec(self.spec)}...", "info")
        token = self._token
        config = self.config

        def work() -> tuple[Run, str]:
            label = ""
            with self._engine_lock:
                if self.engine is None:
                    self.engine, label = load_engine(config)
                    self.model_name = label
            # the output (config.out) is the record button's business: recordings start from the window
            run = open_run(config, self.engine, realtime=True, write_output=False)
            with self._pending_lock:
                stale = self._closing or token != self._token
                if not stale:
                    # close() stops pipelines whose hand-over to the GUI thread is still queued
                    self._pending.append(run.pipeline)
            if stale:
                run.source.stop()
                raise _Stale()
            try:
                run.pipeline.start(config.max_frames)
            except BaseException:
                run.source.stop()
                raise
            return run, label

        self.tasks.run("open", work, lambda result, error: self._opened(token, result, error))

    def _opened(self, token: int, result: tuple[Run, str] | None, error: BaseException | None) -> None:
        self.busy = False
        if error is not None:
            if token != self._token or isinstance(error, _Stale):
                return
            if self.engine is not None and self.model_name:
                self.engine_changed.emit()
            self._handle_failure(error, while_opening=True)
            return
        run, _ = result
        with self._pending_lock:
            if run.pipeline in self._pending:
                self._pending.remove(run.pipeline)
        if token != self._token or self._closing:
            self._stop_async(run)
            return
        self.run = run
        self.info = run.source.info
        self.live = bool(self.info.is_live)
        self.paused = False
        self.message.emit("", "clear")
        self.engine_changed.emit()
        self.opened.emit(self.info)
        if self._record_pending:
            path, self._record_pending = self._record_pending, None
            try:
                self.start_recording(path, side_by_side=self.config.side_by_side)
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
        if p.error is not None:
            self._handle_failure(p.error, while_opening=False)
            return
        if p.finished:
            if self.live and not p.reached_max_frames:
                self._handle_failure(LowlightError(f"{describe_spec(self.spec)}: stream ended"),
                                     while_opening=False)
            elif not self.ended:
                self.ended = True
                self.stop_recording()
                self.message.emit(f"End of {describe_spec(self.spec)}", "info")
            return
        if self.reconnect.attempts and p.stats.frames_out > 0:
            self.reconnect.reset()

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
        delay = self.reconnect.next_delay()
        self.message.emit(f"{describe_spec(self.spec)}: {text} \u2014 reconnecting in {delay:.1f} s "
                          f"(attempt {self.reconnect.attempts})", "error")
        if self.options.quit_after is not None and self.reconnect.attempts > 3:
            self.failed.emit(error)
            return
        self._retry_timer.start(int(delay * 1000))

    # ------------------------------------------------------------------ frames
    def latest(self) -> LatestPair | None:
        """The newest processed pair, or ``None`` before the first one."""
        p = self.pipeline
        if p is None:
            return None
        count, pair = p.latest.wait_newer(-1, timeout=0)
        return None if pair is None else LatestPair(count, pair[0], pair[1])

    # ------------------------------------------------------------------ controls
    def set_strength(self, value: float) -> None:
        self.config = self.config.replace(strength=value)  # clamped to [0, 1] by RunConfig
        if self.engine is not None:
            self.engine.strength = self.config.strength

    def set_denoise(self, on: bool) -> None:
        """Temporal denoising of the output on or off (from the next frame)."""
        self.config = self.config.replace(denoise=bool(on))
        if self.engine is not None:
            self.engine.denoise = self.config.denoise

    def set_proc_size(self, proc_size: int | None) -> None:
        """``None`` = the model's default; ``0`` = full resolution; else the short side in pixels.

        Only the engine holds it: the source asks the engine for every frame's shape."""
        self.config = self.config.replace(proc_size=proc_size)
        if self.engine is not None:
            self.engine.set_proc_size(proc_size)
        self.engine_changed.emit()

    def set_model(self, spec: str) -> None:
        """Load ``spec`` (name or checkpoint path) in the background, then swap it in."""
        from lowlight_rt.models.catalog import load_model

        self.message.emit(f"Loading model {spec}...", "info")
        self.tasks.run("model", lambda: (spec, *load_model(spec)), self._model_loaded)

    def _model_loaded(self, result: tuple[str, Any, dict] | None, error: BaseException | None) -> None:
        if error is not None:
            self.message.emit(f"Cannot load model: {_one_line(error)}", "error")
            self.engine_changed.emit()
            return
        spec, model, info = result
        self.config = self.config.replace(model=spec)
        if self.engine is None:
            return
        self.engine.set_model(model)
        self.model_name = model_label(spec, info)
        self.set_proc_size(self.config.proc_size)
        self.message.emit(f"Model: {self.model_name}", "info")
        QTimer.singleShot(2000, self._clear_info)  # a bound method: the timer dies with the session

    def _clear_info(self) -> None:
        self.message.emit("", "clear-info")

    def set_device(self, device: str) -> None:
        self.config = self.config.replace(device=device)
        engine = self.engine
        if engine is None:
            return
        self.message.emit(f"Switching to {device}...", "info")
        self.tasks.run("device", lambda: engine.set_device(device), self._device_switched)

    def _device_switched(self, result: None, error: BaseException | None) -> None:
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

    def position(self, frame: Frame | None) -> float | None:
        if frame is None:
            return None
        pos = frame.extra.get("position") if frame.extra else None
        return float(pos) if pos is not None else frame.time

    # ------------------------------------------------------------------ recording
    @property
    def recording(self) -> bool:
        return self.recorder.active

    @property
    def recording_path(self) -> Path | None:
        return self.recorder.path

    def start_recording(self, path: str | Path, *, side_by_side: bool = False) -> Path:
        """Record what plays from now on to ``path`` (MP4, through the runtime's VideoFileSink)."""
        if self.pipeline is None or self.info is None:
            raise LowlightError("nothing is playing")
        return self.recorder.start(self.pipeline, self.info, self.config, path, live=self.live,
                                   side_by_side=side_by_side)

    def stop_recording(self) -> Path | None:
        """Stop and finalise the recording; returns its path (``None`` if none was running)."""
        return self.recorder.stop()

    # ------------------------------------------------------------------ shutdown
    def _stop_current(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            self._stop_async(run)

    def _stop_async(self, run: Run) -> None:
        self.tasks.run("stopped", run.stop, _log_stop_failure)

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
        run, self.run = self.run, None
        if run is not None:
            run.stop()
        self.tasks.join(timeout)
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for p in pending:  # opened, but the GUI thread never adopted them
            p.stop()

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


def _log_stop_failure(result: None, error: BaseException | None) -> None:
    if error is not None:
        log.warning("stopping the pipeline failed: %s", error)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(error, LowlightError) else f"{type(error).__name__}: {msg}"
