"""The Sink protocol: anything that consumes ``(frame, enhanced)`` pairs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lowlight_rt.frames import Frame

__all__ = ["Sink", "same_path"]


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (same absolute path, or the same
    inode: hard links, symlinks). Every "output is the input" check uses it."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


@runtime_checkable
class Sink(Protocol):
    """Consumes enhanced frames in order. ``enhanced`` is ``(H, W, 3)`` uint8 RGB, the size of
    ``frame.image``. ``close(partial=True)`` means processing stopped early (Ctrl-C / error); a sink
    must still leave a complete, readable output behind. ``close`` is idempotent.

    A sink with a class attribute ``accepts_yuv = True`` may also get
    :class:`~lowlight_rt.frames.YuvPlanes` as ``enhanced`` (the pipeline's YUV path); other sinks
    always get RGB."""

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Consume one enhanced frame."""

    def close(self, partial: bool = False) -> None:
        """Finish the output (flush, trailer)."""
