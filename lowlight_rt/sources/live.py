"""Shared capture loop for live PyAV inputs (camera, network stream): newest frame wins, reconnects."""

from __future__ import annotations

import abc
from fractions import Fraction

import av

from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule, yuv_path_matrix
from lowlight_rt.sources.base import Source, SourceInfo
from lowlight_rt.sources.decode import DecodeGaveUp, decoded_frames, describe_av_error

__all__ = ["LiveAVSource"]

# Errors that mean "the connection / device is gone" (reconnect), not "this packet is damaged".
_CONNECTION_ERRORS = (OSError, av.error.ExitError, DecodeGaveUp)
_FALLBACK_TIME_BASE = Fraction(1, 1_000_000)


class LiveAVSource(Source):
    """A live PyAV input read into a :class:`~lowlight_rt.sources.buffers.LatestFrameBuffer`.

    pts are rebased so the first frame has pts 0 and stay strictly increasing across reconnects,
    in the time base of the first connection (``info.time_base``). Subclasses implement
    :meth:`_open_container` (raise ``InputError`` when unreachable) and :meth:`_lost_message`.

    Args:
        max_retries: reconnect attempts after the input is lost before ``read()`` raises
            ``InputError`` (0 = never reconnect).
        backoff: ``(first_delay_s, max_delay_s)``; the delay doubles after each failed attempt.
        reconnect_on_eof: treat a normal end of the input as a drop (live streams never end).
    """

    def __init__(self, *, proc_shape: ShapeRule | None, max_retries: int,
                 backoff: tuple[float, float], reconnect_on_eof: bool, kind: str) -> None:
        super().__init__(proc_shape=proc_shape, live=True)
        self.max_retries = int(max_retries)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.reconnect_on_eof = reconnect_on_eof
        self._container: av.container.InputContainer | None = None
        self._pending: av.VideoFrame | None = None
        self._frames = None
        self._conn_tb: Fraction = _FALLBACK_TIME_BASE
        self._conn_first_pts: int | None = None
        self._out_offset = 0
        self._last_out: int | None = None
        self._connect()
        first = self._pending
        s = self._stream
        rate = s.average_rate or s.guessed_rate or s.base_rate
        self.info = SourceInfo(
            width=first.width, height=first.height, fps=float(rate) if rate else None,
            time_base=self._conn_tb, is_live=True, frame_count=None, path=None,
            audio_stream_indices=[], metadata=dict(self._container.metadata), kind=kind,
            yuv_matrix=yuv_path_matrix(first))
        self._out_tb = self._conn_tb

    @abc.abstractmethod
    def _open_container(self) -> av.container.InputContainer:
        """Open the input (device or URL). Raise ``InputError`` with one line if it is unreachable."""

    @abc.abstractmethod
    def _lost_message(self, reason: str) -> str:
        """One-line message for ``InputError`` when the input is lost for good."""

    def _connect(self) -> None:
        """Open the input and decode its first frame into ``self._pending``."""
        container = self._open_container()
        if not container.streams.video:
            container.close()
            raise InputError(f"no video stream in {self.describe()}")
        self._container = container
        self._stream = container.streams.video[0]
        self._conn_tb = Fraction(self._stream.time_base) if self._stream.time_base else _FALLBACK_TIME_BASE
        self._frames = decoded_frames(container, self._stream, on_error=self._on_decode_error,
                                      should_stop=lambda: self.stopping, fatal=_CONNECTION_ERRORS,
                                      max_consecutive_errors=20)
        try:
            first = next(self._frames, None)
        except _CONNECTION_ERRORS as exc:
            self._close_container()
            raise InputError(f"{self.describe()}: no video received ({describe_av_error(exc)})") from None
        if first is None:
            self._close_container()
            raise InputError(f"{self.describe()}: no video received")
        self._pending = first
        self._conn_first_pts = None

    def describe(self) -> str:
        """Short human name of the input for messages."""
        return type(self).__name__

    def _on_decode_error(self, exc: BaseException | None) -> None:
        self.stats.add("decode_errors")

    def _out_pts(self, vf: av.VideoFrame) -> int:
        """Rebased, strictly increasing pts in ``info.time_base``."""
        pts = vf.pts
        if pts is None:
            out = (self._last_out + 1) if self._last_out is not None else 0
        else:
            if self._conn_first_pts is None:
                self._conn_first_pts = pts
            rel = Fraction(pts - self._conn_first_pts) * self._conn_tb / self._out_tb
            out = self._out_offset + int(round(rel))
        if self._last_out is not None and out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        return out

    def _capture(self) -> None:
        failures = 0
        while not self.stopping:
            reason = "the input ended"
            try:
                while not self.stopping:
                    if self._pending is not None:
                        vf, self._pending = self._pending, None
                    else:
                        vf = next(self._frames, None)
                    if vf is None:
                        break
                    frame = self._frame_from_av(vf, self._out_pts(vf), self._out_tb)
                    if not self._emit(frame):
                        return
                    failures = 0
            except _CONNECTION_ERRORS as exc:
                reason = describe_av_error(exc)
            else:
                if self.stopping or not self.reconnect_on_eof:
                    return
            self._close_container()
            # next connection continues one nominal frame after the last pts
            step = 1
            if self.info.fps:
                step = max(1, int(round(1 / (self.info.fps * self._out_tb))))
            self._out_offset = (self._last_out or 0) + step
            while True:
                if failures >= self.max_retries:
                    raise InputError(self._lost_message(reason))
                delay = min(self.backoff[1], self.backoff[0] * (2 ** failures))
                failures += 1
                if not self._sleep(delay):
                    return
                try:
                    self._connect()
                except InputError as exc:
                    reason = str(exc).rsplit(": ", 1)[-1]  # the cause, without the repeated name
                    continue
                self.stats.add("reconnects")
                break

    def _close_container(self) -> None:
        c, self._container = self._container, None
        self._frames = None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    def _close(self) -> None:
        self._pending = None
        self._close_container()
