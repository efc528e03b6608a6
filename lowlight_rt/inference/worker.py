"""The inference thread: source -> engine -> bounded queue of ``(frame, enhanced)`` pairs."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np

from ..frames import Frame
from .engine import Engine, PendingResult
from .stats import InferenceStats

__all__ = ["InferenceWorker", "THREAD_NAME", "FINISH_THREAD_NAME"]

THREAD_NAME = "lowlight-inference"
#: on the CPU: the thread that finishes batch N (the operator's application) and hands it on, while the
#: inference thread runs the network on batch N+1
FINISH_THREAD_NAME = "lowlight-finish"
_END = object()
_POLL = 0.05  # seconds: how often blocked waits re-check stop()


class InferenceWorker:
    """Reads frames from ``source``, enhances them in batches, queues ``(frame, enhanced)`` pairs.

    ``source`` needs ``read(timeout) -> Frame | None`` (``None`` = end of stream; ``TimeoutError``
    when nothing arrived yet). The consumer calls :meth:`get` (or iterates) until it returns
    ``None``; an exception raised in the thread (by the source or the engine) is re-raised by
    :meth:`get` after the pairs produced before it. On CUDA, batch N+1 is submitted before batch N
    is collected, so uploads overlap compute. On the CPU a second thread of the worker's own
    (:data:`FINISH_THREAD_NAME`) finishes each batch (the operator's full-resolution application) and
    hands it on at once, while this thread reads the next frames and runs the network on them: no
    frame waits for the next one, so live sources get no extra latency. :meth:`stop` ends both threads.

    Args:
        source: the frame source (already started).
        engine: the :class:`~lowlight_rt.inference.engine.Engine`.
        batch_size: frames per engine call (files: >1; live: 1). Frames already waiting in the
            source are batched; the worker never waits to fill a batch.
        out_queue_size: capacity of the output queue (back-pressure on the engine when full).
        yuv: ask the engine for the YUV path (``Engine.submit(yuv=True)``): enhanced frames may then
            be :class:`~lowlight_rt.frames.YuvPlanes` instead of RGB arrays.
    """

    def __init__(self, source: Any, engine: Engine, batch_size: int = 1, out_queue_size: int = 8,
                 yuv: bool = False) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.source = source
        self.engine = engine
        self.batch_size = int(batch_size)
        self.yuv = bool(yuv)
        self._finish_failed = False
        self.stats = InferenceStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(out_queue_size)))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._ended = False
        self._source_ended = False
        self._deferred_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=False)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> InferenceWorker:
        self.stats.started()
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to end, unblock it, and join it (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the thread, if any."""
        return self._error

    def __enter__(self) -> InferenceWorker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- consumer side ---------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> tuple[Frame, np.ndarray] | None:
        """Next ``(frame, enhanced)``; ``None`` at the end; re-raises the thread's error.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        if self._ended:
            return self._finish()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL if deadline is None else min(_POLL, max(0.0, deadline - time.monotonic()))
            try:
                item = self._queue.get(timeout=wait)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():  # ended without a marker (stop)
                    self._ended = True
                    return self._finish()
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("no enhanced frame available yet") from None
        if item is _END:
            self._ended = True
            return self._finish()
        return item

    def _finish(self) -> None:
        if self._error is not None:
            raise self._error
        return None

    def __iter__(self) -> Iterator[tuple[Frame, np.ndarray]]:
        while True:
            item = self.get()
            if item is None:
                return
            yield item

    # -- thread ----------------------------------------------------------------------------------
    def _read(self, timeout: float) -> Frame | None | object:
        """A frame, ``None`` at the end, or ``_END`` when nothing came within ``timeout``."""
        try:
            return self.source.read(timeout=timeout)
        except TimeoutError:
            return _END
        except queue.Empty:
            return _END

    def _next_batch(self) -> list[Frame] | None:
        """Up to ``batch_size`` frames (blocks for the first); ``None`` at the end of the stream."""
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        t0 = time.perf_counter()
        while True:
            if self._stop.is_set():
                return None
            first = self._read(_POLL)
            if first is not _END:
                break
        self.stats["wait"].add(time.perf_counter() - t0)
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.batch_size and not self._stop.is_set():
            try:
                more = self._read(0.0)
            except Exception as e:  # deliver the frames read so far, raise on the next call
                self._deferred_error = e
                break
            if more is _END:
                break
            if more is None:
                self._source_ended = True
                break
            batch.append(more)
        return batch

    def _emit(self, frames: list[Frame], pending: PendingResult, submit_s: float) -> bool:
        t0 = time.perf_counter()
        enhanced = pending.result()
        now = time.perf_counter()
        self.stats["infer"].add(submit_s + (now - t0), len(frames))  # overlapped GPU time not counted
        self.stats.add_batch()
        for frame, out in zip(frames, enhanced):
            if frame.capture_time:
                self.stats["latency"].add(now - frame.capture_time)
            t0 = time.perf_counter()
            if not self._put((frame, out)):
                return False
            self.stats["output"].add(time.perf_counter() - t0)
        return True

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _finish_batch(self, frames: list[Frame], pending: PendingResult, submit_s: float) -> bool:
        """:meth:`_emit` on the finishing thread; nothing more once a batch before failed (no gaps)."""
        if self._finish_failed:
            return False
        try:
            return self._emit(frames, pending, submit_s)
        except BaseException:
            self._finish_failed = True
            raise

    def _run(self) -> None:
        in_flight: tuple[list[Frame], PendingResult, float] | None = None   # CUDA: double buffering
        finishing: deque[Future] = deque()   # CPU: batches handed to the finishing thread, in order
        error: BaseException | None = None
        finisher: ThreadPoolExecutor | None = None

        def drain(keep: int = 0) -> bool:
            """Wait until at most ``keep`` batches are finishing; False if one was cut short by stop()."""
            while len(finishing) > keep:
                if not finishing.popleft().result():
                    return False
            return True

        try:
            try:
                while not self._stop.is_set():
                    batch = None if self._source_ended else self._next_batch()
                    if batch is None:
                        break
                    t_submit = time.perf_counter()
                    pending = self.engine.submit(batch, yuv=True) if self.yuv else self.engine.submit(batch)
                    submit_s = time.perf_counter() - t_submit
                    if self.engine.device_type == "cuda":
                        if not drain():   # batches finished on the CPU before a device switch go first
                            break
                        previous, in_flight = in_flight, (batch, pending, submit_s)
                        if previous is not None:
                            try:
                                emitted = self._emit(*previous)
                            except BaseException:
                                in_flight = None   # nothing after a failed batch: no gap in the output
                                raise
                            if not emitted:
                                in_flight = None
                                break
                        continue
                    if in_flight is not None:   # switched from CUDA: its last batch goes first
                        current, in_flight = in_flight, None
                        if not self._emit(*current):
                            break
                    if finisher is None:
                        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix=FINISH_THREAD_NAME)
                    # at most two batches finishing: memory stays bounded when the operator is the slower step
                    if not drain(keep=1):
                        break
                    finishing.append(finisher.submit(self._finish_batch, batch, pending, submit_s))
            except BaseException as e:  # handed to the consumer after the frames already enhanced
                error = e
            try:   # the batches still finishing come before the error (theirs first: they are earlier)
                drain()
            except BaseException as e:
                error = e
                finishing.clear()
            if in_flight is not None and not self._stop.is_set():   # CUDA: the last batch
                try:
                    self._emit(*in_flight)
                except BaseException as e:
                    error = error or e
            self._error = error
        finally:
            if finisher is not None:
                finisher.shutdown(wait=True, cancel_futures=True)
            self.stats.finished()
            # the end marker must get through even when the consumer is slow; give up only on stop()
            while True:
                try:
                    self._queue.put(_END, timeout=_POLL)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break
