"""What the viewer is asked to do: the run's settings (a :class:`RunConfig`) and the window's own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from lowlight_rt.config import RunConfig

#: keyword aliases :meth:`ViewerOptions.from_any` understands (older names of RunConfig fields)
_ALIASES = {"source_spec": "source", "record": "out"}


def _viewer_run_default() -> RunConfig:
    return RunConfig(loop=True)  # the viewer plays a file over and over


@dataclass
class ViewerOptions:
    """Settings of one viewer window.

    Attributes:
        run: every run setting (:class:`~lowlight_rt.config.RunConfig`: source, model, device,
            processing size, strength, x264 settings of recordings, camera and stream options,
            ``out`` = start recording to it as soon as frames flow). ``run.source`` may also be a
            callable ``opener(proc_shape=rule) -> Source`` (tests, benchmarks), with a
            ``description`` attribute for the title. The viewer loops files (``loop=True``).
        quit_after: quit after this many NEW frames were shown (scripts, tests).
        screenshot: save the window as this PNG when the viewer quits.
        output_dir: where snapshots and recordings started from the window go.
        mode: ``"side"`` (side by side) or ``"split"``.
        fullscreen: start fullscreen.
        retry_delay / retry_max_delay: first and longest wait (s) between reconnection attempts of a
            live source (the wait doubles after each failed attempt).
        size: initial window size.
    """

    run: RunConfig = field(default_factory=_viewer_run_default)
    quit_after: int | None = None
    screenshot: str | None = None
    output_dir: str = "."
    mode: str = "side"
    fullscreen: bool = False
    retry_delay: float = 1.0
    retry_max_delay: float = 10.0
    size: tuple[int, int] = (1280, 600)

    def __post_init__(self) -> None:
        if self.mode not in ("side", "split"):
            raise ValueError(f"unknown view mode {self.mode!r}")

    @classmethod
    def from_any(cls, options: ViewerOptions | RunConfig | dict[str, Any] | None = None,
                 **kwargs: Any) -> ViewerOptions:
        """Build from a ViewerOptions, a RunConfig, a dict and/or keywords.

        Keys are the window's fields (``quit_after``, ``mode``...) or :class:`RunConfig` fields
        (``source``, ``model``, ``crf``..., also ``source_spec`` for ``source`` and ``record`` for
        ``out``). An unknown key raises ``TypeError`` naming it: a typo fails loudly.
        """
        if isinstance(options, ViewerOptions):
            run, values = options.run, {f.name: getattr(options, f.name) for f in fields(cls) if f.name != "run"}
        elif isinstance(options, RunConfig):
            run, values = options, {}
        elif isinstance(options, dict):
            run, values = _viewer_run_default(), dict(options)
        elif options is None:
            run, values = _viewer_run_default(), {}
        else:
            raise TypeError(f"cannot build ViewerOptions from {type(options).__name__}")
        values.update(kwargs)
        if "run" in values:
            run = values.pop("run")
        mine = {f.name for f in fields(cls)}
        run_names = RunConfig.field_names()
        run_changes: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in values.items():
            name = _ALIASES.get(key, key)
            if name in mine:
                continue
            if name in run_names:
                run_changes[name] = value
            else:
                unknown.append(key)
        if unknown:
            raise TypeError(f"unknown viewer option(s): {', '.join(sorted(unknown))}")
        own = {k: v for k, v in values.items() if k in mine}
        return cls(run=run.replace(**run_changes) if run_changes else run, **own)

    def replace(self, **changes: Any) -> ViewerOptions:
        return dataclasses.replace(self, **changes)
