"""The lowlight-rt desktop viewer (PyQt6): live input | enhanced video, controls, recording.

``run_viewer(options) -> exit code`` opens it (what ``lowlight-rt --camera 0`` and
``lowlight-rt --input X --view`` call); ``bench_viewer(seconds, width, height, fps)`` measures its
display rate and latency offscreen. Both are imported lazily so ``import ui`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_viewer", "bench_viewer", "ViewerOptions"]


def __getattr__(name: str) -> Any:
    if name == "run_viewer":
        from .app import run_viewer

        return run_viewer
    if name == "bench_viewer":
        from .bench import bench_viewer

        return bench_viewer
    if name == "ViewerOptions":
        from .options import ViewerOptions

        return ViewerOptions
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
