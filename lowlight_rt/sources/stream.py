"""Network stream source (rtsp, rtsps, rtmp, http(s), udp, srt) with timeouts and reconnects."""

from __future__ import annotations

import errno
import time
from urllib.parse import urlsplit, urlunsplit

import av

from lowlight_rt.config import STREAM_RETRIES, STREAM_TIMEOUT_S
from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule
from lowlight_rt.sources.decode import describe_av_error
from lowlight_rt.sources.live import LiveAVSource

__all__ = ["StreamSource", "STREAM_SCHEMES", "FILE_URL_SCHEMES", "is_stream_url", "redact_url",
           "describe_open_error"]

STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"})


FILE_URL_SCHEMES = frozenset({"http", "https"})
"""Schemes that may serve a finite file (read like a file) rather than a live stream."""


def describe_open_error(exc: BaseException, elapsed: float, timeout: tuple[float, float] | float | None) -> str:
    """Why opening a URL failed, one line; a server that never answered says "timed out".

    FFmpeg reports the interrupt that ends a wait as "Immediate exit requested" (or, for some
    demuxers, as the "Invalid data found" of the empty reply it then sees), so a failure after the
    open timeout is reported as the timeout it is."""
    limit = timeout[0] if isinstance(timeout, tuple) else timeout
    if isinstance(exc, av.error.ExitError) or getattr(exc, "errno", None) == errno.ETIMEDOUT or (
            limit is not None and elapsed >= 0.9 * limit):
        return f"timed out after {elapsed:.1f} s (no answer from the server; --timeout sets the limit)"
    return describe_av_error(exc)


def is_stream_url(spec: str) -> bool:
    """True if ``spec`` looks like ``scheme://...`` with a network scheme FFmpeg can read."""
    return "://" in spec and spec.split("://", 1)[0].lower() in STREAM_SCHEMES


def redact_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{parts.username}:***@{host}", parts.path, parts.query,
                       parts.fragment))


class StreamSource(LiveAVSource):
    """A network stream read by PyAV into a latest-frame buffer, reconnecting with backoff.

    Args:
        url: ``rtsp://``, ``http(s)://`` ... (anything FFmpeg's network protocols accept).
        rtsp_transport: RTSP lower transport (``tcp`` by default: no UDP packet loss / NAT issues).
        open_timeout: seconds to connect and get the first frame before ``InputError``.
        read_timeout: seconds without data before the stream counts as dropped.
        max_retries: consecutive reconnect attempts before ``read()`` raises ``InputError``.
        backoff: ``(first_delay_s, max_delay_s)``; the delay doubles after each failed attempt.
        reconnect_on_eof: reconnect when the server ends the stream (True for live streams;
            False reads a finite http resource once).
        options: extra FFmpeg protocol / demuxer options.
    """

    def __init__(self, url: str, *, rtsp_transport: str = "tcp", open_timeout: float = STREAM_TIMEOUT_S,
                 read_timeout: float = STREAM_TIMEOUT_S, max_retries: int = STREAM_RETRIES,
                 backoff: tuple[float, float] = (0.5, 8.0), reconnect_on_eof: bool = True,
                 options: dict[str, str] | None = None, proc_shape: ShapeRule | None = None) -> None:
        self.url = url
        self.scheme = url.split("://", 1)[0].lower()
        opts: dict[str, str] = {}
        if self.scheme in ("rtsp", "rtsps"):
            opts["rtsp_transport"] = rtsp_transport
        opts.update(options or {})
        self.options = opts
        self.timeout = (float(open_timeout), float(read_timeout))
        super().__init__(proc_shape=proc_shape, max_retries=max_retries,
                         backoff=backoff, reconnect_on_eof=reconnect_on_eof, kind="stream")
        self.info.path = self.url

    def describe(self) -> str:
        return f"stream {redact_url(self.url)}"

    def _lost_message(self, reason: str) -> str:
        return (f"stream {redact_url(self.url)} lost ({reason}); gave up after "
                f"{self.max_retries} reconnect attempt(s)")

    def _open_container(self) -> av.container.InputContainer:
        started = time.monotonic()
        try:
            return av.open(self.url, "r", options=dict(self.options), timeout=self.timeout)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            reason = describe_open_error(exc, time.monotonic() - started, self.timeout)
            raise InputError(f"stream {redact_url(self.url)} unreachable: {reason}") from None
