"""The Source interface (with its SourceInfo and SourceStats) and its capture thread.

A source opens its input in the constructor (raising :class:`~lowlight_rt.errors.InputError` with
one line), then :meth:`Source.start` runs :meth:`Source._capture` in its own thread. Frames reach
the consumer through one of the buffers of :mod:`lowlight_rt.sources.buffers` (files: every frame
with back-pressure; live: the newest frame wins).

End of stream and errors travel through the same buffer: :meth:`Source.read` returns the frames
that were produced, then ``None`` at the end, or re-raises the capture thread's exception.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from lowlight_rt.frames import SWS_TO_RGB, Frame, ShapeRule, YuvPlanes
from lowlight_rt.sources.buffers import BoundedFrameQueue, FrameBuffer, LatestFrameBuffer

__all__ = [
    "Source",
    "SourceInfo",
    "SourceStats",
    "THREAD_PREFIX",
    "resize_rgb",
]

THREAD_PREFIX = "lowlight-source"
"""Every capture thread's name starts with this (tests check none is left after ``stop()``)."""


@dataclass
class SourceInfo:
    """What is known about an input once it is open.

    ``width``/``height`` are the full-resolution frame size as decoded (of the first image for
    folders);
    ``time_base`` is the unit of ``Frame.pts`` (``None`` for images); ``frame_count`` is ``None``
    when unknown or unbounded (live).
    """

    width: int
    height: int
    fps: float | None = None
    time_base: Fraction | None = None
    is_live: bool = False
    frame_count: int | None = None
    path: str | None = None
    audio_stream_indices: list[int] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    kind: str = "file"
    duration: float | None = None
    rotation: int = 0
    """Display rotation in degrees counter-clockwise (phone videos); pixels are NOT rotated."""
    yuv_matrix: str | None = None
    """``"bt601"`` / ``"bt709"``: the matrix of the decoded 4:2:0 planes (first frame) when the YUV path
    can take them, else ``None``. A video output is written in it, so enhanced planes need no matrix change."""


class SourceStats:
    """Thread-safe counters: ``captured``, ``dropped``, ``decode_errors``, ``reconnects``."""

    FIELDS = ("captured", "dropped", "decode_errors", "reconnects")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` by ``n``."""
        with self._lock:
            self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of all counters."""
        with self._lock:
            return dict(self._values)

    @property
    def captured(self) -> int:
        with self._lock:
            return self._values["captured"]

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._values["dropped"]

    @property
    def decode_errors(self) -> int:
        with self._lock:
            return self._values["decode_errors"]

    @property
    def reconnects(self) -> int:
        with self._lock:
            return self._values["reconnects"]

    def __repr__(self) -> str:
        return f"SourceStats({self.snapshot()})"


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downsample ``(H, W, 3)`` uint8 to ``(height, width, 3)`` with area averaging."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class Source(abc.ABC):
    """A frame producer running in its own capture thread.

    Subclasses open their input in ``__init__`` (raising ``InputError``), set ``self.info``, and
    implement :meth:`_capture` (produce frames with :meth:`_emit` until it returns ``False`` or the
    input ends) and :meth:`_close` (release the input). Use as a context manager or call
    :meth:`start` / :meth:`stop`.
    """

    info: SourceInfo

    def __init__(self, *, proc_shape: ShapeRule | None = None, live: bool = False, queue_size: int = 8) -> None:
        self.stats = SourceStats()
        self._lock = threading.Lock()
        self._shape_rule = proc_shape
        self._buffer: FrameBuffer = LatestFrameBuffer() if live else BoundedFrameQueue(queue_size)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._closed = False
        #: hand decoded 4:2:0 frames over as :class:`YuvPlanes` (``Frame.yuv``, RGB converted only on
        #: demand) where the format allows; set by the pipeline before :meth:`start` (the YUV path)
        self.keep_yuv = False

    # -- consumer API -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the capture thread (no-op if already started)."""
        with self._lock:
            if self._thread is not None or self._stop_event.is_set():
                return
            name = f"{THREAD_PREFIX}-{getattr(self, 'info', None) and self.info.kind or 'source'}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=False)
            self._thread.start()

    def read(self, timeout: float | None = None) -> Frame | None:
        """Next frame, or ``None`` at end of stream. Starts the thread on first use.

        Re-raises the capture thread's exception (after the frames produced before it).

        Raises:
            TimeoutError: no frame within ``timeout`` seconds while the source is still running.
        """
        if self._thread is None and not self._stop_event.is_set():
            self.start()
        return self._buffer.get(timeout)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop capturing, join the thread and release the input. Idempotent."""
        self._stop_event.set()
        self._buffer.cancel()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._close_once()

    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __iter__(self):
        """Iterate frames until end of stream."""
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def summary_notes(self) -> list[tuple[str, str]]:
        """``(label, text)`` lines for the end-of-run summary (skipped files, a truncated input...)."""
        return []

    @property
    def running(self) -> bool:
        """True while the capture thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def proc_shape(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` frames of this size are downsampled to for inference: the shape rule's answer,
        asked per frame (the engine's ``proc_shape``: a new model or processing size applies from
        the next frame, and the engine then never resizes a frame again), or the size itself when
        the source has no rule."""
        rule = self._shape_rule
        return (width, height) if rule is None else rule(width, height)

    # -- producer side ------------------------------------------------------------------------
    @abc.abstractmethod
    def _capture(self) -> None:
        """Produce frames with :meth:`_emit` until the input ends or ``_emit`` returns False."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the input (container, device). Called once, from the thread that finishes."""

    def _wake(self) -> None:
        """Hook: interrupt a capture thread that may be waiting (pause, backoff sleep)."""

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._capture()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised by read()
            error = exc
        finally:
            self._close_once()
            self._buffer.finish(error)

    def _close_once(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._close()

    def _needs_proc(self, width: int, height: int) -> tuple[int, int] | None:
        pw, ph = self.proc_shape(width, height)
        if pw < width or ph < height:
            return pw, ph
        return None

    def _frame_from_av(self, vf: av.VideoFrame, pts: int | None, time_base: Fraction | None) -> Frame:
        """Convert a decoded PyAV frame to a :class:`Frame` (RGB full res + ``proc`` when smaller).

        With :attr:`keep_yuv` a yuv420p frame keeps its planes instead (no full-size conversion;
        ``proc`` is area-downsampled in YUV and converted at the small size).
        """
        if self.keep_yuv:
            planes = YuvPlanes.from_av(vf)
            if planes is not None:
                shape = self._needs_proc(vf.width, vf.height)
                proc = planes.resized_rgb(*shape) if shape is not None else None
                return self._new_frame(None, pts=pts, time_base=time_base, proc=proc, yuv=planes)
        # threads=1: swscale's automatic threading is several times slower for one frame;
        # SWS_TO_RGB: rounded, not truncated (the default path darkens every frame by ~1.3 codes)
        image = vf.to_ndarray(format="rgb24", threads=1, interpolation=SWS_TO_RGB)
        shape = self._needs_proc(vf.width, vf.height)
        proc = None
        if shape is not None:
            proc = vf.to_ndarray(width=shape[0], height=shape[1], format="rgb24", threads=1,
                                 interpolation=SWS_TO_RGB)
        return self._new_frame(image, pts=pts, time_base=time_base, proc=proc)

    def _frame_from_rgb(self, image: np.ndarray, *, pts: int | None = None,
                        time_base: Fraction | None = None, name: str | None = None,
                        extra: dict | None = None) -> Frame:
        """Wrap an ``(H, W, 3)`` uint8 RGB array as a :class:`Frame`, downsampling ``proc`` with cv2."""
        shape = self._needs_proc(image.shape[1], image.shape[0])
        proc = resize_rgb(image, *shape) if shape is not None else None
        return self._new_frame(image, pts=pts, time_base=time_base, proc=proc, name=name, extra=extra)

    def _new_frame(self, image: np.ndarray | None, *, pts: int | None, time_base: Fraction | None,
                   proc: np.ndarray | None, name: str | None = None, extra: dict | None = None,
                   yuv: YuvPlanes | None = None) -> Frame:
        frame = Frame(image=None if image is None else np.ascontiguousarray(image), index=self._index, pts=pts,
                      time_base=time_base, capture_time=time.perf_counter(), proc=proc, name=name,
                      extra=extra or {}, yuv=yuv)
        self._index += 1
        return frame

    def _emit(self, frame: Frame) -> bool:
        """Hand ``frame`` to the consumer (blocking for files); False means: stop producing."""
        if self._stop_event.is_set():
            return False
        if isinstance(self._buffer, LatestFrameBuffer):
            ok, dropped = self._buffer.put_counting(frame)
            if dropped:
                self.stats.add("dropped", dropped)
        else:
            ok = self._buffer.put(frame)
        if ok:
            self.stats.add("captured")
        return ok

    def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` unless stopped; returns False if the source is stopping."""
        if seconds > 0:
            self._stop_event.wait(seconds)
        return not self._stop_event.is_set()
