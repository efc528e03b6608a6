"""Recording from the viewer: the runtime's MP4 sink, rebased to t = 0 and finalised where the user stopped."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
import numpy as np

from lowlight_rt.config import X264_CRF, X264_PRESET, X264_TUNE
from lowlight_rt.frames import Frame
from lowlight_rt.sources.base import SourceInfo


class ViewerRecording:
    """A :class:`~lowlight_rt.sinks.VideoFileSink` fed by the pipeline between Record and Stop.

    * Start: a recording begins wherever the user pressed Record, so the sink is opened with
      ``rebase=True``: the first recorded frame gets pts 0 (for a file, the first recorded
      frame's time on the file's timeline is the start; for a live source, its clock's value),
      later frames keep their spacing, and the file's audio is seeked to that start and shifted
      by the same offset (A/V stay in sync; the audio starts at the first audio packet at or
      after the start, within one audio frame of 0).
    * Looping files (the viewer's default): pts keep increasing across loops, but the audio is on
      the file's own timeline, so the frames handed to the sink are moved back by the loop
      offset seen at the first recorded frame (its ``extra["position"]``): the start is that
      frame's time in the file. A recording that runs past the file's end keeps its video; its
      audio stops where the file's audio ends.
    * Crash-safe: written as a fragmented MP4 (a fragment a second), so a viewer killed with
      SIGKILL, a power cut or a full disk leaves a playable file missing at most the last ~2 s.
    * Stop: a recording covers only what was played while recording, so it is always closed with
      ``partial=True`` (audio up to the last recorded frame), whoever closes it (``remove_sink``
      or the pipeline stopping at the end of the file).

    Args:
        path: output ``.mp4``.
        info: the playing source's ``SourceInfo`` (size, time base, fps, path, audio streams).
        live: True for cameras / streams (no audio is copied from them).
        side_by_side: write ``input | enhanced`` instead of the enhanced video alone.
        crf, preset, tune: x264 settings (the run's, :class:`~lowlight_rt.config.RunConfig`).
    """

    def __init__(self, path: str | Path, info: SourceInfo, *, live: bool, side_by_side: bool = False,
                 crf: int = X264_CRF, preset: str = X264_PRESET, tune: str | None = X264_TUNE) -> None:
        from lowlight_rt.sinks import VideoFileSink

        self.path = Path(path)
        audio = info.path if (not live and info.path and info.audio_stream_indices) else None
        self._time_base = Fraction(info.time_base) if info.time_base else None
        self._video_start = _video_start_pts(audio) if audio is not None else None
        self._loop_shift: int | None = None
        self.sink = VideoFileSink(str(self.path), info.width, info.height, time_base=info.time_base,
                                  fps=info.fps, audio_from=audio, side_by_side=side_by_side, rebase=True,
                                  crf=crf, preset=preset, tune=tune,
                                  fragmented=True)
        self.side_by_side = side_by_side
        self.frames = 0

    @property
    def start_time(self) -> float | None:
        """Where the recording starts, in seconds (on a file's own timeline, or a live source's clock).

        ``None`` until the first frame was recorded."""
        t = self.sink.start_time
        return float(t) if t is not None else None

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        """Encode one pair (called from the pipeline's writer thread)."""
        if self._loop_shift is None:
            self._loop_shift = self._shift_of(frame)
        if self._loop_shift and frame.pts is not None:
            frame = dataclasses.replace(frame, pts=frame.pts - self._loop_shift)
        self.sink.write(frame, enhanced)
        self.frames += 1

    def _shift_of(self, frame: Frame) -> int:
        """pts ticks between ``frame``'s (looped) timeline and the file's own, 0 if not a looped file."""
        pos = frame.extra.get("position")
        tb = self._time_base
        if (self._video_start is None or pos is None or frame.pts is None or tb is None
                or frame.time_base is None or Fraction(frame.time_base) != tb):
            return 0
        return int(frame.pts) - (self._video_start + round(Fraction(pos) / tb))

    def close(self, partial: bool = False) -> None:
        """Finalise the MP4 (idempotent); audio stops with the last recorded frame."""
        self.sink.close(partial=True)


def _video_start_pts(path: str) -> int | None:
    """Start time of the file's first video stream in its own ticks (0 when unknown); ``None`` if unreadable."""
    import av

    try:
        with av.open(path, "r") as c:
            st = c.streams.video[0].start_time if c.streams.video else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return int(st) if st is not None else 0
