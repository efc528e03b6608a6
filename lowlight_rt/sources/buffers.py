"""The two hand-over points between a source's capture thread and its consumer.

* :class:`BoundedFrameQueue` (files, images): every frame, in order, with back-pressure;
* :class:`LatestFrameBuffer` (camera, stream): one slot, the newest frame wins, replaced frames are
  counted as dropped.

End of stream and errors travel through the same buffer (``finish(error)``).
"""

from __future__ import annotations

import abc
import collections
import threading
import time

from lowlight_rt.frames import Frame

__all__ = ["FrameBuffer", "LatestFrameBuffer", "BoundedFrameQueue"]


class FrameBuffer(abc.ABC):
    """A hand-over point between one producer thread and one consumer thread.

    The producer calls :meth:`put` for each frame and finally :meth:`finish` (optionally with an
    exception). The consumer calls :meth:`get`, which returns the buffered frames, then ``None``
    (end of stream) or raises the producer's exception. :meth:`cancel` (consumer side) wakes a
    blocked producer and makes further ``put`` calls return ``False``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._finished = False
        self._cancelled = False
        self._error: BaseException | None = None

    @abc.abstractmethod
    def put(self, item: Frame) -> bool:
        """Hand over ``item``; returns ``False`` if the buffer was cancelled (producer should stop)."""

    @abc.abstractmethod
    def _pop(self) -> Frame | None:
        """Remove and return the next buffered frame, or ``None`` if empty (lock held)."""

    @abc.abstractmethod
    def clear(self) -> int:
        """Discard buffered frames (e.g. after a seek); returns how many were discarded."""

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame; ``None`` at end of stream; raises the producer's error after its last frame.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds (the stream is still open).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                item = self._pop()
                if item is not None:
                    self._cond.notify_all()
                    return item
                if self._finished or self._cancelled:
                    if self._error is not None:
                        raise self._error
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("no frame available yet")
                    self._cond.wait(left)

    def finish(self, error: BaseException | None = None) -> None:
        """Producer side: no more frames; ``error`` (if any) is raised by ``get`` after the last one."""
        with self._cond:
            self._finished = True
            if error is not None and self._error is None:
                self._error = error
            self._cond.notify_all()

    def cancel(self) -> None:
        """Consumer side: stop accepting frames and wake anyone waiting."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """True once the producer called :meth:`finish` (frames may still be buffered)."""
        with self._cond:
            return self._finished

    @property
    def cancelled(self) -> bool:
        with self._cond:
            return self._cancelled


class LatestFrameBuffer(FrameBuffer):
    """One slot, newest frame wins. A frame replaced before it was read counts as dropped."""

    def __init__(self) -> None:
        super().__init__()
        self._slot: Frame | None = None
        self.dropped = 0

    def put(self, item: Frame) -> bool:
        with self._cond:
            if self._cancelled:
                return False
            if self._slot is not None:
                self.dropped += 1
            self._slot = item
            self._cond.notify_all()
            return True

    def put_counting(self, item: Frame) -> tuple[bool, int]:
        """Like :meth:`put`, also returning how many frames this call dropped (0 or 1)."""
        with self._cond:
            before = self.dropped
            ok = self.put(item)
            return ok, self.dropped - before

    def _pop(self) -> Frame | None:
        item, self._slot = self._slot, None
        return item

    def clear(self) -> int:
        with self._cond:
            n = int(self._slot is not None)
            self._slot = None
            return n


class BoundedFrameQueue(FrameBuffer):
    """FIFO of at most ``maxsize`` frames; ``put`` blocks while full (back-pressure), never drops."""

    def __init__(self, maxsize: int = 8) -> None:
        super().__init__()
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: collections.deque[Frame] = collections.deque()

    def put(self, item: Frame) -> bool:
        with self._cond:
            while len(self._items) >= self.maxsize and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def _pop(self) -> Frame | None:
        return self._items.popleft() if self._items else None

    def clear(self) -> int:
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
