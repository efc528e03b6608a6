"""What the viewer is asked to do: the source, engine settings, and script/test hooks."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any, Callable


@dataclass
class ViewerOptions:
    """Settings of one viewer run (the CLI's flags, or keyword arguments of ``run_viewer``).

    Attributes:
        source_spec: what to open: a file path, an image folder, a URL (``rtsp://``, ``http(s)://``),
            a camera index (``int`` or ``"camera:N"``), or a callable ``(proc_size, size_multiple) ->
            Source`` (tests, benchmarks: e.g. a ``FakeLiveSource``). ``None`` opens an empty window.
        model: checkpoint path or model name (``None`` = the runtime's default model).
        device: ``"auto" | "cpu" | "cuda"``; ``fp16``: half precision on CUDA.
        proc_size: short side the network runs at (``None`` = the model's default).
        strength: enhancement blend in [0, 1].
        record: start recording to this ``.mp4`` as soon as frames flow (``None`` = don't).
        side_by_side: recordings are ``input | enhanced`` instead of the enhanced video alone.
        quit_after: quit after this many NEW frames were shown (scripts, tests).
        screenshot: save the window as this PNG when the viewer quits.
        output_dir: where snapshots and recordings started from the window go.
        loop: files start over at their end (the viewer's default); ``False`` stops at the end.
        mode: ``"side"`` (side by side) or ``"split"``.
        fullscreen: start fullscreen.
        camera_size / camera_fps / pixel_format: camera capture options.
        retry_delay / retry_max_delay: first and longest wait (s) between reconnection attempts of a
            live source (the wait doubles after each failed attempt).
    """

    source_spec: Any = None
    model: str | None = None
    device: str = "auto"
    fp16: bool = True
    proc_size: int | None = None
    strength: float = 1.0
    record: str | None = None
    side_by_side: bool = False
    quit_after: int | None = None
    screenshot: str | None = None
    output_dir: str = "."
    loop: bool = True
    mode: str = "side"
    fullscreen: bool = False
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    pixel_format: str | None = None
    retry_delay: float = 1.0
    retry_max_delay: float = 10.0
    size: tuple[int, int] = (1280, 600)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, options: "ViewerOptions | argparse.Namespace | dict | None" = None,
                 **kwargs: Any) -> "ViewerOptions":
        """Build from a ViewerOptions, an argparse Namespace (the CLI's), a dict, and/or keywords.

        Namespace aliases understood: ``input``/``camera`` -> ``source_spec``, ``fp32`` -> ``fp16``,
        ``out`` -> ``record``. Unknown names are ignored (kept in ``extra``).
        """
        if isinstance(options, ViewerOptions):
            values: dict[str, Any] = {f.name: getattr(options, f.name) for f in fields(cls)}
        elif isinstance(options, argparse.Namespace):
            values = _from_namespace(vars(options))
        elif isinstance(options, dict):
            values = dict(options)
        elif options is None:
            values = {}
        else:
            raise TypeError(f"cannot build ViewerOptions from {type(options).__name__}")
        values.update(kwargs)
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names}
        opts = cls(**known)
        opts.extra.update(extra)
        if opts.mode not in ("side", "split"):
            raise ValueError(f"unknown view mode {opts.mode!r}")
        opts.strength = min(1.0, max(0.0, float(opts.strength)))
        return opts


def _from_namespace(ns: dict[str, Any]) -> dict[str, Any]:
    values = dict(ns)
    if values.get("source_spec") is None:
        if values.get("camera") is not None:
            cam = values["camera"]
            values["source_spec"] = int(cam) if isinstance(cam, str) and cam.isdigit() else cam
        elif values.get("input") is not None:
            values["source_spec"] = values["input"]
    if "fp32" in values:
        values["fp16"] = not values.pop("fp32")
    if values.get("record") is None and values.get("out") is not None:
        values["record"] = values["out"]
    return values


SourceFactory = Callable[..., Any]
