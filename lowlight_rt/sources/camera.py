"""Camera source: v4l2 (Linux), avfoundation (macOS) or dshow (Windows) through PyAV."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import av

from lowlight_rt.errors import InputError
from lowlight_rt.frames import ShapeRule
from lowlight_rt.sources.decode import describe_av_error
from lowlight_rt.sources.live import LiveAVSource

__all__ = ["CameraSource", "camera_device"]


def _dshow_video_devices() -> list[str]:
    """Names of DirectShow video devices, in FFmpeg's listing order (Windows only, best effort)."""
    names: list[str] = []
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)  # the listing is printed at INFO level
    try:
        with av.logging.Capture() as logs:
            try:
                av.open("dummy", format="dshow", options={"list_devices": "true"}).close()
            except (av.error.FFmpegError, OSError):
                pass
    finally:
        av.logging.set_level(previous)
    for _level, _name, line in logs:
        m = re.search(r'"([^"]+)"\s*\(video\)', line)
        if m:
            names.append(m.group(1))
    return names


def camera_device(index: int, platform: str | None = None) -> tuple[str, str]:
    """``(url, format)`` that FFmpeg opens camera ``index`` with on ``platform`` (default: this OS).

    Raises:
        InputError: the camera does not exist.
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        dev = f"/dev/video{index}"
        if not Path(dev).exists():
            raise InputError(f"camera {index} not found ({dev} does not exist)")
        return dev, "v4l2"
    if platform == "darwin":
        return str(index), "avfoundation"
    if platform.startswith("win"):
        names = _dshow_video_devices()
        if index >= len(names):
            raise InputError(f"camera {index} not found ({len(names)} DirectShow video device(s))")
        return f"video={names[index]}", "dshow"
    raise InputError(f"cameras are not supported on platform {platform!r}")


class CameraSource(LiveAVSource):
    """A camera opened with PyAV's device demuxers; newest frame wins (drops are counted).

    Args:
        index: camera number (``/dev/videoN`` on Linux, the N-th device on macOS / Windows).
        width, height: requested capture size (the driver may pick the nearest it supports).
        fps: requested frame rate.
        pixel_format: requested capture format (v4l2 ``input_format`` such as ``mjpeg`` or
            ``yuyv422``; avfoundation / dshow ``pixel_format``).
        device, input_format: open this URL with this FFmpeg format instead of the platform
            default (e.g. ``/dev/v4l/by-id/...``; tests use a file here).
        read_timeout: seconds without a frame before the camera is considered lost.
        max_retries: reopen attempts after the camera is lost (default 0: report it).
    """

    def __init__(self, index: int = 0, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, pixel_format: str | None = None,
                 device: str | None = None, input_format: str | None = None,
                 open_timeout: float = 10.0, read_timeout: float = 5.0, max_retries: int = 0,
                 backoff: tuple[float, float] = (0.5, 4.0), proc_shape: ShapeRule | None = None) -> None:
        self.index = int(index)
        if device is None:
            device, default_format = camera_device(self.index)
            input_format = input_format or default_format
        self.device = device
        self.input_format = input_format
        self.options = self._device_options(width, height, fps, pixel_format)
        self.timeout = (float(open_timeout), float(read_timeout))
        super().__init__(proc_shape=proc_shape, max_retries=max_retries,
                         backoff=backoff, reconnect_on_eof=max_retries > 0, kind="camera")
        self.info.path = self.device

    def _device_options(self, width, height, fps, pixel_format) -> dict[str, str]:
        opts: dict[str, str] = {}
        if (width is None) != (height is None):
            raise InputError("camera size needs both width and height")
        if width is not None:
            opts["video_size"] = f"{int(width)}x{int(height)}"
        if fps is not None:
            opts["framerate"] = f"{float(fps):g}"
        if pixel_format:
            key = "input_format" if self.input_format == "v4l2" else "pixel_format"
            opts[key] = pixel_format
        return opts

    def describe(self) -> str:
        return f"camera {self.index} ({self.device})"

    def _lost_message(self, reason: str) -> str:
        return f"camera {self.index} disconnected ({reason})"

    def _open_container(self) -> av.container.InputContainer:
        try:
            return av.open(self.device, "r", format=self.input_format, options=dict(self.options),
                           timeout=self.timeout)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"cannot open camera {self.index} ({self.device}): "
                             f"{describe_av_error(exc)}") from None
