"""Source -> engine -> sinks, each stage in its own thread.

::

    capture thread (Source)  --frames-->  InferenceWorker thread  --(frame, enhanced)-->  writer thread
      decode + downsample                   batch, enhance               sinks: MP4 / images / viewer

The CLI calls :meth:`Pipeline.run` (blocking, with a progress callback); the viewer calls
:meth:`Pipeline.start` / :meth:`Pipeline.stop` and reads :attr:`Pipeline.latest` from its GUI timer.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from .inference import Engine, InferenceWorker
from .frames import Frame, YuvPlanes
from .sinks import LatestFrameSink
from .sinks.base import Sink
from .sources.base import Source

WRITER_THREAD_NAME = "lowlight-rt-writer"


@dataclass
class PipelineStats:
    """What a run did. FPS values are frames per second of wall time of that stage's thread."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    capture_fps: float = 0.0
    inference_fps: float = 0.0
    output_fps: float = 0.0
    infer_ms_per_frame: float = 0.0
    write_ms_per_frame: float = 0.0
    latency_ms_median: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class Pipeline:
    """Runs ``source`` through ``engine`` into ``sinks`` on three threads.

    Args:
        source: an opened :class:`~lowlight_rt.sources.base.Source` (not yet started).
        engine: the :class:`~lowlight_rt.inference.Engine` that enhances frames.
        sinks: consumers of ``(frame, enhanced)`` pairs, written in order from the writer thread.
        batch_size: frames per inference batch (files only; live sources always use 1).
        yuv: the YUV path: the source keeps decoded 4:2:0 planes, the engine applies the operator to
            them and sinks that declare ``accepts_yuv = True`` (the H.264 sink) get
            :class:`~lowlight_rt.frames.YuvPlanes`; other sinks get RGB, converted once per frame.
            Saves the two full-size colour conversions (docs/PERFORMANCE.md).
    """

    def __init__(self, source: Source, engine: Engine, sinks: Iterable[Sink] = (), *, batch_size: int = 1,
                 yuv: bool = False) -> None:
        self.source = source
        if yuv:
            source.keep_yuv = True
        self.engine = engine
        self.latest = LatestFrameSink()
        self._sinks: list[Sink] = [*sinks, self.latest]
        self._sinks_lock = threading.Lock()
        batch = 1 if source.info.is_live else max(1, batch_size)
        self.worker = InferenceWorker(source, engine, batch_size=batch, yuv=yuv)
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._completed = False
        self._closed = False
        self._t0 = 0.0
        self._t_end: float | None = None
        self._frames_out = 0
        self._max_frames: int | None = None
        self._cut = False
        self._write_s = 0.0
        self._latencies: deque[float] = deque(maxlen=300)

    # -- control --------------------------------------------------------------------------------
    def start(self, max_frames: int | None = None) -> None:
        """Start capture, inference and writer threads (returns at once); the writer stops after
        ``max_frames`` frames when given (then :attr:`reached_max_frames`)."""
        if self._writer is not None:
            return
        if max_frames is not None:
            if max_frames < 1:
                raise ValueError("max_frames must be >= 1")
            self._max_frames = max_frames
        self._t0 = time.perf_counter()
        self.source.start()
        self.worker.start()
        self._writer = threading.Thread(target=self._write_loop, name=WRITER_THREAD_NAME, daemon=False)
        self._writer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread, then close (finalise) every sink. Idempotent.

        Sinks are closed with ``partial=True`` unless the input was processed to its end (a run
        cut at ``max_frames`` is complete, but its sinks are closed as partial so a file's audio
        stops with its last frame).
        """
        self._stop.set()
        try:
            self.source.stop()
            self.worker.stop()
            if self._writer is not None and self._writer is not threading.current_thread():
                self._writer.join(timeout)
        finally:  # a signal (Ctrl-C, SIGTERM) raised while joining must not skip the finalisation
            if self._t_end is None:
                self._t_end = time.perf_counter()
            self._close_sinks(partial=not self._completed or self._cut)

    def run(self, progress: Callable[[PipelineStats], None] | None = None, interval: float = 0.5,
            max_frames: int | None = None) -> PipelineStats:
        """Process until the input ends (or ``max_frames`` frames are out); returns the stats.

        Raises the first error of any stage after finalising the sinks; ``KeyboardInterrupt`` (or an
        error raised by ``progress``) is re-raised after the sinks were finalised as partial outputs.
        ``max_frames`` is enforced by the writer thread: exactly that many frames are written.
        """
        if max_frames is not None and max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.start(max_frames)
        try:
            while not self._done.wait(interval):
                if progress is not None:
                    progress(self.stats)
        except BaseException:  # Ctrl-C, or the progress callback failed: finalise, then re-raise
            self.stop()
            raise
        self.stop()
        if progress is not None:
            progress(self.stats)
        if self._error is not None:
            raise self._error
        return self.stats

    # -- sinks ----------------------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        """Start feeding ``sink`` from the next frame on (e.g. the viewer's record button)."""
        with self._sinks_lock:
            self._sinks.insert(len(self._sinks) - 1, sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop feeding ``sink`` and finalise it at the last frame it got (waits for a write in progress).

        The sink is closed as ``partial``: a recording stopped mid-stream ends at its last frame, and
        its copied audio ends there too instead of running on to the end of the input.
        """
        with self._sinks_lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
        sink.close(partial=True)

    # -- state ----------------------------------------------------------------------------------
    @property
    def error(self) -> BaseException | None:
        """The error that stopped the pipeline, if any."""
        return self._error

    @property
    def finished(self) -> bool:
        """True once the writer thread has ended (end of input, error or stop)."""
        return self._done.is_set()

    @property
    def reached_max_frames(self) -> bool:
        """True if the run ended because ``max_frames`` frames were written."""
        return self._cut

    @property
    def completed(self) -> bool:
        """True if the whole input was processed."""
        return self._completed

    @property
    def stats(self) -> PipelineStats:
        """A snapshot of counters and per-stage speeds."""
        now = self._t_end if self._t_end is not None else time.perf_counter()
        elapsed = max(now - self._t0, 1e-9) if self._t0 else 0.0
        src = self.source.stats.snapshot()
        wst = self.worker.stats.snapshot()
        out = self._frames_out
        lat = list(self._latencies)
        infer = wst.get("infer", {})
        infer_ms = float(infer.get("ms_per_frame", 0.0))
        return PipelineStats(
            frames_in=int(src.get("captured", 0)),
            frames_out=out,
            dropped=int(src.get("dropped", 0)),
            decode_errors=int(src.get("decode_errors", 0)),
            reconnects=int(src.get("reconnects", 0)),
            elapsed_s=elapsed,
            capture_fps=src.get("captured", 0) / elapsed if elapsed else 0.0,
            inference_fps=1000.0 / infer_ms if infer_ms > 0 else 0.0,
            output_fps=out / elapsed if elapsed else 0.0,
            infer_ms_per_frame=infer_ms,
            write_ms_per_frame=1000.0 * self._write_s / out if out else 0.0,
            latency_ms_median=1000.0 * statistics.median(lat) if lat else 0.0,
            error=None if self._error is None else str(self._error),
        )

    # -- internals ------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self.worker.get(timeout=0.1)
                except TimeoutError:
                    continue
                if item is None:  # end of input, unless we were asked to stop
                    self._completed = not self._stop.is_set()
                    break
                frame, enhanced = item
                self._write(frame, enhanced)
                if self._max_frames is not None and self._frames_out >= self._max_frames:
                    self._completed = self._cut = True  # the requested amount is a complete output
                    break
        except BaseException as e:  # handed to run() / the viewer; never lost in a thread
            self._error = e
        finally:
            self._t_end = time.perf_counter()
            self._done.set()

    def _write(self, frame: Frame, enhanced: np.ndarray | YuvPlanes) -> None:
        t = time.perf_counter()
        # the lock is held while writing so remove_sink() never closes a sink in mid-write
        with self._sinks_lock:
            rgb = None
            for sink in self._sinks:
                if isinstance(enhanced, YuvPlanes) and not getattr(sink, "accepts_yuv", False):
                    if rgb is None:
                        rgb = enhanced.to_rgb()
                    sink.write(frame, rgb)
                else:
                    sink.write(frame, enhanced)
        done = time.perf_counter()
        self._write_s += done - t
        self._frames_out += 1
        if frame.capture_time:
            self._latencies.append(done - frame.capture_time)

    def _close_sinks(self, partial: bool) -> None:
        if self._closed:
            return
        self._closed = True
        first_error: BaseException | None = None
        with self._sinks_lock:
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink.close(partial=partial)
            except BaseException as e:  # close every sink even if one fails
                first_error = first_error or e
        if first_error is not None and self._error is None:
            self._error = first_error
