"""``open_source(spec)``: pick the right Source class for a path, camera index, URL or fake spec."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lowlight_rt.errors import InputError
from lowlight_rt.sources.base import Source
from lowlight_rt.sources.camera import CameraSource
from lowlight_rt.sources.fake import FakeLiveSource
from lowlight_rt.sources.file import FileSource
from lowlight_rt.sources.images import ImageSource, is_image_path
from lowlight_rt.sources.stream import StreamSource, is_stream_url

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


def open_source(spec: str | int | os.PathLike, *, proc_size: int | None = None, size_multiple: int = 8,
                realtime: bool = False, loop: bool = False,
                camera_options: dict[str, Any] | None = None,
                stream_options: dict[str, Any] | None = None, decoder: str | None = None) -> Source:
    """Open ``spec`` as a :class:`Source` (not started). Raises ``InputError`` with one line.

    Args:
        spec: file / image / folder path, camera index (``0``, ``"0"``, ``"camera:0"``), URL, or
            ``"fake:1280x720@30"``.
        proc_size, size_multiple: inference size (see :func:`lowlight_rt.frames.processing_shape`).
        realtime, loop: file playback options (viewer / demo).
        camera_options: :class:`CameraSource` keywords (width, height, fps, pixel_format, ...).
        stream_options: :class:`StreamSource` keywords (rtsp_transport, open_timeout, read_timeout,
            max_retries, backoff, reconnect_on_eof, options).
        decoder: files only: an FFmpeg decoder to try first (e.g. ``h264_cuvid``, see
            :func:`lowlight_rt.codecs.choose_codecs`).
    """
    kind = source_kind(spec)
    common = {"proc_size": proc_size, "size_multiple": size_multiple}
    if kind == "camera":
        index = spec if isinstance(spec, int) else int(_CAMERA.match(os.fspath(spec)).group(1))
        return CameraSource(index, **(camera_options or {}), **common)
    if kind == "fake":
        m = _FAKE.match(os.fspath(spec))
        fps = float(m.group(3)) if m.group(3) else 30.0
        return FakeLiveSource(int(m.group(1)), int(m.group(2)), fps, **common)
    if kind == "stream":
        return StreamSource(os.fspath(spec), **(stream_options or {}), **common)
    if kind == "images":
        return ImageSource(spec, **common)
    return FileSource(spec, realtime=realtime, loop=loop, decoder=decoder, **common)
