"""Recording from the viewer: the runtime's MP4 sink, finalised where the user stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lowlight_rt.frames import Frame


class ViewerRecording:
    """A :class:`~lowlight_rt.sinks.VideoFileSink` fed by the pipeline between Record and Stop.

    The pipeline's ``remove_sink`` closes sinks as if the input had been processed to its end, which
    for an MP4 with audio copies the audio to the END of the source file. A viewer recording covers
    only what was played while recording, so it is always closed with ``partial=True`` (audio up to
    the last recorded frame).

    Args:
        path: output ``.mp4``.
        info: the playing source's ``SourceInfo`` (size, time base, fps, path, audio streams).
        live: True for cameras / streams (no audio is copied from them).
        side_by_side: write ``input | enhanced`` instead of the enhanced video alone.
    """

    def __init__(self, path: str | Path, info: Any, *, live: bool, side_by_side: bool = False) -> None:
        from lowlight_rt.sinks import VideoFileSink

        self.path = Path(path)
        audio = info.path if (not live and info.path and info.audio_stream_indices) else None
        self.sink = VideoFileSink(str(self.path), info.width, info.height, time_base=info.time_base,
                                  fps=info.fps, audio_from=audio, side_by_side=side_by_side)
        self.side_by_side = side_by_side
        self.frames = 0

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Encode one pair (called from the pipeline's writer thread)."""
        self.sink.write(frame, enhanced)
        self.frames += 1

    def close(self, partial: bool = False) -> None:
        """Finalise the MP4 (idempotent); audio stops with the last recorded frame."""
        self.sink.close(partial=True)
