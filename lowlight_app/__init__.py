"""The ``lowlight-rt`` command: the launcher above the runtime (``lowlight_rt``) and the viewer (``ui``).

``lowlight_rt`` never imports ``ui`` (a headless run needs no PyQt6): its command line
(:func:`lowlight_rt.cli.main`) is handed the viewer here, as :class:`~lowlight_rt.cli.ViewerHooks`
whose functions import the viewer only when a run asks for it.
"""

from __future__ import annotations

from typing import Any, Sequence

from lowlight_rt.cli import ViewerHooks
from lowlight_rt.cli import main as _cli_main
from lowlight_rt.config import RunConfig
from lowlight_rt.errors import OutputError

__all__ = ["main", "VIEWER"]


def run_viewer(config: RunConfig, *, quit_after: int | None = None, screenshot: str | None = None) -> int:
    """Open the viewer on ``config`` (every run option, ``out`` = record to it); returns the exit code."""
    from ui.display import check_display

    check_display()  # before Qt: a missing display is exit 7 and one line, not Qt's abort
    try:
        from ui.app import run_viewer as open_viewer
    except ImportError as e:
        raise OutputError(f"the viewer cannot start: {e}") from e
    # the viewer plays a file over and over (--loop or not)
    return open_viewer(config.replace(loop=True), quit_after=quit_after, screenshot=screenshot)


def bench_viewer(**kwargs: Any) -> dict[str, Any]:
    """``lowlight-rt bench --viewer``: the viewer's display FPS and latency (see :mod:`ui.bench`)."""
    from ui.bench import bench_viewer as bench

    return bench(**kwargs)


VIEWER = ViewerHooks(run=run_viewer, bench=bench_viewer)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lowlight-rt`` console script (``python -m lowlight_app``)."""
    return _cli_main(argv, viewer=VIEWER)
