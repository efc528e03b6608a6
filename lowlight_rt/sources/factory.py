"""``open_source(spec)``: pick the right Source class for a path, camera index, URL or fake spec."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lowlight_rt.config import STREAM_TIMEOUT_S
from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule
from lowlight_rt.sources.base import Source
from lowlight_rt.sources.camera import CameraSource
from lowlight_rt.sources.fake import FakeLiveSource
from lowlight_rt.sources.file import FileSource
from lowlight_rt.sources.images import ImageSource, is_image_path
from lowlight_rt.sources.stream import FILE_URL_SCHEMES, StreamSource, is_stream_url

__all__ = ["open_source", "source_kind"]

_CAMERA = re.compile(r"^(?:camera:)?(\d+)$", re.IGNORECASE)
_FAKE = re.compile(r"^fake:(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?$", re.IGNORECASE)


def source_kind(spec: str | int | os.PathLike) -> str:
    """``"camera"``, ``"stream"``, ``"fake"``, ``"images"`` or ``"file"`` for ``spec``.

    An int, ``"camera:N"`` or a bare number is a camera (unless a file of that name exists);
    ``scheme://`` with a network scheme is a stream; ``fake:WxH@FPS`` is a synthetic live source;
    a folder or an image extension is images; anything else is a video file.
    """
    if isinstance(spec, bool):
        raise InputError(f"invalid input {spec!r}")
    if isinstance(spec, int):
        return "camera"
    s = os.fspath(spec)
    if _FAKE.match(s):
        return "fake"
    if _CAMERA.match(s) and not (s.isdigit() and Path(s).exists()):
        return "camera"
    if is_stream_url(s):
        return "stream"
    if "://" in s:
        raise InputError(f"unsupported URL scheme in {s.split('://', 1)[0]}://... "
                         f"(use rtsp, rtsps, rtmp, http, https, udp, tcp or srt)")
    p = Path(s)
    if p.is_dir() or is_image_path(p):
        return "images"
    return "file"


def _finite_url_source(url: str, stream_options: dict[str, Any], *, realtime: bool, loop: bool,
                       proc_shape: ShapeRule | None) -> FileSource | None:
    """``url`` opened as a :class:`FileSource` if it serves a finite file, else ``None`` (live)."""
    timeout = (float(stream_options.get("open_timeout", STREAM_TIMEOUT_S)),
               float(stream_options.get("read_timeout", STREAM_TIMEOUT_S)))
    src = FileSource(url, realtime=realtime, loop=loop, timeout=timeout, options=stream_options.get("options"),
                     proc_shape=proc_shape)
    if src.finite:
        return src
    src.stop()  # no end in sight: a live stream
    return None


def open_source(spec: str | int | os.PathLike, *, proc_shape: ShapeRule | None = None,
                realtime: bool = False, loop: bool = False,
                camera_options: dict[str, Any] | None = None,
                stream_options: dict[str, Any] | None = None, decoder: str | None = None) -> Source:
    """Open ``spec`` as a :class:`Source` (not started). Raises ``InputError`` with one line.

    Args:
        spec: file / image / folder path, camera index (``0``, ``"0"``, ``"camera:0"``), URL, or
            ``"fake:1280x720@30"``.
        proc_shape: the engine's shape rule (``engine.proc_shape``; see :data:`lowlight_rt.frames.ShapeRule`),
            asked per frame; ``None``: frames are not downsampled.
        realtime, loop: file playback options (viewer / demo).
        camera_options: :class:`CameraSource` keywords (width, height, fps, pixel_format, ...).
        stream_options: :class:`StreamSource` keywords (rtsp_transport, open_timeout, read_timeout,
            max_retries, backoff, reconnect_on_eof, options), and ``live=True`` to read an http(s)
            URL as a live stream without looking at it first.
        decoder: files only: an FFmpeg decoder to try first (e.g. ``h264_cuvid``, see
            :func:`lowlight_rt.codecs.choose_codecs`).

    An http(s) URL that serves a finite file (the server gives its length, or the container its
    duration: an index, an HLS playlist that ends) is read like a file (:class:`FileSource`: every frame in
    order, audio kept, ends at its end, ``loop`` replays it); one that does not (a live HTTP
    stream, a live playlist) and every other network scheme is a live :class:`StreamSource`
    (newest frame wins, reconnects).
    """
    kind = source_kind(spec)
    common = {"proc_shape": proc_shape}
    if kind == "camera":
        index = spec if isinstance(spec, int) else int(_CAMERA.match(os.fspath(spec)).group(1))
        return CameraSource(index, **(camera_options or {}), **common)
    if kind == "fake":
        m = _FAKE.match(os.fspath(spec))
        fps = float(m.group(3)) if m.group(3) else 30.0
        return FakeLiveSource(int(m.group(1)), int(m.group(2)), fps, **common)
    if kind == "stream":
        url = os.fspath(spec)
        opts = dict(stream_options or {})
        live = bool(opts.pop("live", False))
        if not live and url.split("://", 1)[0].lower() in FILE_URL_SCHEMES:
            finite = _finite_url_source(url, opts, realtime=realtime, loop=loop, **common)
            if finite is not None:
                return finite
        return StreamSource(url, **opts, **common)
    if kind == "images":
        return ImageSource(spec, **common)
    return FileSource(spec, realtime=realtime, loop=loop, decoder=decoder, **common)
