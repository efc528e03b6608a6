"""Error-tolerant demux + decode of one PyAV video stream, shared by file, camera and stream sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import av

__all__ = ["decoded_frames", "describe_av_error", "DecodeGaveUp"]


class DecodeGaveUp(Exception):
    """Raised by :func:`decoded_frames` after too many consecutive demux errors."""


def describe_av_error(exc: BaseException) -> str:
    """A short one-line reason from a PyAV/OS error (no file names, no newlines)."""
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(msg).split())


def decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    on_error: Callable[[BaseException | None], None],
    should_stop: Callable[[], bool] = lambda: False,
    max_consecutive_errors: int = 100,
    fatal: tuple[type[BaseException], ...] = (),
    counts: dict[str, int] | None = None,
    decoder: av.CodecContext | None = None,
) -> Iterator[av.VideoFrame]:
    """Yield every decodable frame of ``stream`` in order, skipping damaged data.

    A packet the decoder rejects, or a demux error (after which demuxing resumes at the
    container's current position), calls ``on_error(exc)`` and is skipped. Frames the decoder
    output with concealed damage (``frame.is_corrupt``) are yielded and reported with
    ``on_error(None)``. Errors of the ``fatal`` types propagate (streams use this for network
    errors they reconnect on). Raises :class:`DecodeGaveUp` after ``max_consecutive_errors``
    demux errors in a row without a decoded frame. ``counts["packets"]`` (if given) is
    incremented for every non-empty packet demuxed, ``counts["demux_errors"]`` for every demux error.
    ``decoder``: a codec context to decode with instead of the stream's own (e.g. NVDEC's ``h264_cuvid``).
    """
    decode = stream.decode if decoder is None else decoder.decode
    consecutive = 0
    while True:
        try:
            for packet in container.demux(stream):
                if should_stop():
                    return
                if counts is not None and packet.size:
                    counts["packets"] = counts.get("packets", 0) + 1
                try:
                    frames = decode(packet)
                except fatal:
                    raise
                except (av.error.FFmpegError, ValueError) as exc:
                    on_error(exc)
                    continue
                for frame in frames:
                    consecutive = 0
                    if frame.is_corrupt:
                        on_error(None)
                    yield frame
            return
        except fatal:
            raise
        except (av.error.EOFError, EOFError):
            return
        except (av.error.FFmpegError, OSError) as exc:
            on_error(exc)
            if counts is not None:
                counts["demux_errors"] = counts.get("demux_errors", 0) + 1
            consecutive += 1
            if consecutive >= max_consecutive_errors:
                raise DecodeGaveUp(describe_av_error(exc)) from exc

