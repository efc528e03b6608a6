"""Video file source: every frame, in order, with its pts (PyAV)."""

from __future__ import annotations

import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule, yuv_path_matrix
from lowlight_rt.sources.base import Source, SourceInfo, SourceStats
from lowlight_rt.sources.decode import DecodeGaveUp, decoded_frames, describe_av_error

__all__ = ["FileSource"]


def _open_video_container(path: str, *, timeout: tuple[float, float] | None = None,
                          options: dict[str, str] | None = None,
                          ) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` (a file, or an http(s) URL serving one) and return its container and first
    video stream, or raise ``InputError``."""
    if "://" in path:
        return _open_url(path, timeout, options)
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {path}")
    if p.is_dir():
        raise InputError(f"input is a directory with no video file: {path}")
    if not os.access(p, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {path}")
    if p.stat().st_size == 0:
        raise InputError(f"input is an empty file: {path}")
    try:
        container = av.open(str(p), "r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot open {path}: not a readable video ({describe_av_error(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {path}")
    return container, container.streams.video[0]


def _open_url(url: str, timeout: tuple[float, float] | None, options: dict[str, str] | None,
              ) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    from lowlight_rt.sources.stream import describe_open_error, redact_url

    started = time.monotonic()
    try:
        container = av.open(url, "r", options=dict(options or {}), timeout=timeout)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = describe_open_error(exc, time.monotonic() - started, timeout)
        raise InputError(f"stream {redact_url(url)} unreachable: {reason}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {redact_url(url)}")
    return container, container.streams.video[0]


def _has_end(container: av.container.InputContainer) -> bool:
    """True if a URL serves something finite: a known duration, or (not a playlist) a known
    length in bytes (HTTP Content-Length). A live HTTP stream has neither; a live HLS / DASH
    playlist has a length of its own but no duration."""
    if container.duration is not None and container.duration > 0:
        return True
    if container.format.name in ("hls", "dash", "applehttp"):
        return False
    try:
        return int(container.size) > 0
    except (AttributeError, TypeError, ValueError, av.error.FFmpegError, OSError):
        return False


class FileSource(Source):
    """Decodes a video file in a capture thread into a bounded queue (every frame, in order).

    Frames keep their stream pts and ``time_base``; damaged packets are skipped and counted in
    ``stats.decode_errors`` (frames the decoder concealed are kept and counted too, and so are
    frames the container's index lists but a truncated file no longer holds: ``missing_frames``).

    An http(s) URL that serves a finite file is read the same way (see
    :func:`~lowlight_rt.sources.factory.open_source`): every frame in order, ending at its end.

    Args:
        path: the video file (or an http(s) URL serving one).
        proc_shape: the shape rule ``(w, h) -> (pw, ph)`` of the engine (``engine.proc_shape``),
            asked per frame; ``Frame.proc`` is set when smaller. ``None``: full size.
        realtime: pace frames at their pts (viewer playback) instead of as fast as possible.
        loop: start again at the end (pts keep increasing across loops).
        queue_size: frames buffered ahead of the consumer.
        timeout: URLs: ``(open_s, read_s)`` before the server counts as not answering.
        options: URLs: FFmpeg protocol options.
        decoder: an FFmpeg decoder to use instead of the default one (e.g. ``h264_cuvid``, see
            :func:`lowlight_rt.codecs.choose_codecs`); if it cannot open or decode the first frame,
            the default decoder is used (``decoder_used`` says which ran).
    """

    def __init__(self, path: str | os.PathLike, *, proc_shape: ShapeRule | None = None,
                 realtime: bool = False, loop: bool = False, queue_size: int = 8,
                 timeout: tuple[float, float] | None = None, options: dict[str, str] | None = None,
                 decoder: str | None = None) -> None:
        super().__init__(proc_shape=proc_shape, live=False,
                         queue_size=2 if realtime else queue_size)
        self.path = os.fspath(path)
        self.realtime = realtime
        self.loop = loop
        self._container, self._stream = _open_video_container(self.path, timeout=timeout, options=options)
        #: the input has an end: always for files; for a URL, the server said how long it is
        self.finite = "://" not in self.path or _has_end(self._container)
        # slice threading only: frame threading hides per-packet decode errors from the counters
        self._stream.thread_type = "SLICE"
        self._control = threading.Condition()
        self._paused = False
        self._seek_to: float | None = None
        self._position = 0.0
        self._counts = {"packets": 0}
        self._seeked = False
        self.missing_frames = 0
        #: ``(seconds reached, seconds stated)`` when the data ended before the stated duration
        self.ended_early: tuple[float, float] | None = None
        self._end_s = 0.0  # end (pts + duration, from the start) of the last frame handed over
        self._decoder = self._open_decoder(decoder)
        self.decoder_used = decoder if self._decoder is not None else self._stream.codec_context.name
        self._frames = self._new_iterator()
        try:
            first = next(self._frames, None)
            if first is None and self._decoder is not None:  # the GPU decoder failed: software, from the start
                first = self._software_restart()
        except DecodeGaveUp as exc:
            first = None
            reason = str(exc)
        else:
            reason = "no decodable frames"
        if first is None:
            self._container.close()
            raise InputError(f"cannot read video from {self.path}: {reason}")
        self._pending: av.VideoFrame | None = first

        s = self._stream
        tb = Fraction(s.time_base) if s.time_base is not None else None
        rate = s.average_rate or s.guessed_rate or s.base_rate
        duration = None
        if s.duration is not None and tb is not None:
            duration = float(s.duration * tb)
        elif self._container.duration is not None:
            duration = self._container.duration / av.time_base
        self.info = SourceInfo(
            width=first.width, height=first.height, fps=float(rate) if rate else None, time_base=tb,
            is_live=False, frame_count=(s.frames or None), path=self.path,
            audio_stream_indices=[a.index for a in self._container.streams.audio],
            metadata=dict(self._container.metadata), kind="file", duration=duration,
            rotation=int(first.rotation or 0), yuv_matrix=yuv_path_matrix(first))

    def _open_decoder(self, name: str | None) -> av.CodecContext | None:
        if not name:
            return None
        try:
            ctx = av.CodecContext.create(name, "r")
            src = self._stream.codec_context
            if src.extradata:
                ctx.extradata = src.extradata
            ctx.width, ctx.height = src.width, src.height
            ctx.open()
            return ctx
        except Exception:  # noqa: BLE001 - not usable here: FFmpeg's default decoder
            return None

    def _software_restart(self) -> av.VideoFrame | None:
        self._decoder = None
        self.decoder_used = self._stream.codec_context.name
        self._counts = {"packets": 0}
        self.stats = SourceStats()  # errors of the failed attempt are not the file's
        self._container.seek(0, stream=self._stream)
        self._frames = self._new_iterator()
        return next(self._frames, None)

    # -- viewer controls ----------------------------------------------------------------------
    def pause(self) -> None:
        """Hold playback (realtime mode) / decoding until :meth:`resume`."""
        with self._control:
            self._paused = True

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        with self._control:
            self._paused = False
            self._control.notify_all()

    @property
    def paused(self) -> bool:
        with self._control:
            return self._paused

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` from the start; takes effect in the capture thread, frames already
        buffered are discarded. The next frame is the first one at or after ``seconds``. Works
        while the capture thread runs (use ``loop=True`` so a viewer never reaches the end);
        pts restart from the new position."""
        with self._control:
            self._seek_to = max(0.0, float(seconds))
            self._control.notify_all()
        self._buffer.clear()

    @property
    def position(self) -> float:
        """Time (s, from the file's start) of the last frame handed to the queue."""
        with self._control:
            return self._position

    # -- capture thread -----------------------------------------------------------------------
    def _new_iterator(self):
        return decoded_frames(self._container, self._stream, on_error=self._on_decode_error,
                              should_stop=lambda: self.stopping, counts=self._counts, decoder=self._decoder)

    def _on_decode_error(self, exc: BaseException | None) -> None:
        self.stats.add("decode_errors")

    def _wake(self) -> None:
        with self._control:
            self._control.notify_all()

    def _start_time(self) -> int:
        st = self._stream.start_time
        return int(st) if st is not None else 0

    def _do_seek(self, seconds: float) -> None:
        self._seeked = True
        tb = self._stream.time_base
        target = self._start_time() + int(seconds / tb)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        (self._decoder or self._stream.codec_context).flush_buffers()
        self._frames = self._new_iterator()
        self._pending = None
        for vf in self._frames:
            if vf.pts is None or vf.pts >= target:
                self._pending = vf
                break

    def _capture(self) -> None:
        tb = self._stream.time_base
        loop_offset = 0
        last_pts: int | None = None
        last_step = 1
        anchor: float | None = None  # perf_counter() at which file time 0 is shown (realtime)
        while not self.stopping:
            with self._control:
                while self._paused and self._seek_to is None and not self.stopping:
                    self._control.wait(0.1)
                    anchor = None
                seek_to, self._seek_to = self._seek_to, None
            if self.stopping:
                return
            if seek_to is not None:
                self._do_seek(seek_to)
                self._buffer.clear()  # frames decoded before the seek must not be shown after it
                loop_offset, last_pts, anchor = 0, None, None
            if self._pending is not None:
                vf, self._pending = self._pending, None
            else:
                try:
                    vf = next(self._frames, None)
                except DecodeGaveUp:
                    vf = None
            if vf is None:
                self._count_missing()
                self._check_ended_early()
                if not self.loop or last_pts is None:
                    return
                self._do_seek(0.0)
                first_pts = self._pending.pts if self._pending is not None else None
                if first_pts is None:
                    return
                loop_offset = last_pts + last_step - first_pts
                continue
            raw_pts = vf.pts
            pts = None if raw_pts is None else raw_pts + loop_offset
            if pts is not None and last_pts is not None and pts > last_pts:
                last_step = pts - last_pts
            if pts is not None:
                last_pts = pts
            pos = float((raw_pts - self._start_time()) * tb) if raw_pts is not None and tb else self._position
            if self.realtime and raw_pts is not None:
                t_file = float(pts * tb)
                now = time.perf_counter()
                if anchor is None:
                    anchor = now - t_file
                if not self._pace(anchor + t_file):
                    anchor = None
                    if self.stopping:
                        return
                    if self._seek_to is None:
                        self._pending = vf  # paused: show this frame after resume
                    continue
            frame = self._frame_from_av(vf, pts, Fraction(tb) if tb is not None else None)
            frame.extra["position"] = pos
            if not self._emit(frame):
                return
            with self._control:
                self._position = pos
            step = float(vf.duration * tb) if vf.duration and tb else (1.0 / self.info.fps if self.info.fps else 0.0)
            self._end_s = max(self._end_s, pos + step)

    def _count_missing(self) -> None:
        """At the end of a straight pass: frames the index lists but the file does not contain
        (a truncated file) count as decode errors."""
        expected = self.info.frame_count
        if self._seeked or not expected or self.stopping:
            return
        missing = expected - self._counts["packets"] - self._counts.get("demux_errors", 0)
        if missing > 0:
            self.missing_frames = missing
            self.stats.add("decode_errors", missing)

    def _check_ended_early(self) -> None:
        """At the end of a straight pass: did the data stop before the duration the file states?

        A file cut short (an interrupted copy or download, a recording that was killed) keeps the
        duration of its header or index. Gaps under 2 frames or 0.25 s are not reported (rounding,
        the last frame's duration, audio a little longer than the video).
        """
        stated = self.info.duration
        if self._seeked or self.loop or self.stopping or not stated or self._end_s <= 0:
            return
        tolerance = max(0.25, 2.0 / self.info.fps if self.info.fps else 0.0)
        if stated - self._end_s > tolerance:
            self.ended_early = (self._end_s, stated)

    def summary_notes(self) -> list[tuple[str, str]]:
        """A warning when the input ended before its stated duration (see :meth:`_check_ended_early`)."""
        if self.ended_early is None:
            return []
        reached, stated = self.ended_early
        missing = f", {self.missing_frames} frames missing" if self.missing_frames else ""
        return [("warning", f"input ended at {reached:.2f} s of {stated:.2f} s (the file is cut short{missing})")]

    def _pace(self, due: float) -> bool:
        """Wait until ``due`` (perf_counter); False if interrupted by stop / seek / pause."""
        with self._control:
            while True:
                if self.stopping or self._seek_to is not None or self._paused:
                    return False
                left = due - time.perf_counter()
                if left <= 0:
                    return True
                self._control.wait(min(left, 0.05))

    def _close(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing a damaged container must not mask the real error
            pass
