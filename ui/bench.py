"""Viewer benchmark: display FPS and end-to-end latency with a fake live camera, offscreen.

``bench_viewer`` opens the real :class:`~ui.app.MainWindow` (same timers, same painting, same
pipeline) on a :class:`~lowlight_rt.sources.FakeLiveSource` and measures, after a warm-up:

* display FPS: distinct frames painted per second of wall time;
* latency: ``perf_counter()`` after the frame was painted minus the frame's capture time
  (median, 90th percentile, max);
* the pipeline's own capture / inference FPS and the frames dropped during the measurement.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from lowlight_rt.config import DEFAULT_DENOISE

TARGET_DISPLAY_FPS = 25.0
TARGET_MEDIAN_LATENCY_MS = 100.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[k]


def bench_viewer(seconds: float = 10.0, width: int = 1280, height: int = 720, fps: float = 30.0, *,
                 model: str | None = None, proc_size: int | None = None, device: str = "auto",
                 denoise: bool = DEFAULT_DENOISE, warmup: float = 2.0, window_size: tuple[int, int] = (1280, 600)) -> dict[str, Any]:
    """Run the viewer on a ``width x height`` fake camera at ``fps`` for ``seconds``; return numbers.

    Uses the offscreen Qt platform unless a QApplication already exists or ``QT_QPA_PLATFORM`` is
    set. ``model`` / ``proc_size`` default to the runtime's default model at its default size.
    Returns a JSON-able dict (fps, latency in ms, counts, settings, and ``meets_target``).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtCore import QEventLoop, QTimer
    from PyQt6.QtWidgets import QApplication

    from lowlight_rt.sources import FakeLiveSource

    from .app import MainWindow
    from .options import ViewerOptions

    app = QApplication.instance() or QApplication(sys.argv[:1])

    def camera(proc_shape=None) -> FakeLiveSource:
        return FakeLiveSource(width, height, fps, proc_shape=proc_shape)

    camera.description = f"fake camera {width}x{height}@{fps:g}"  # type: ignore[attr-defined]
    opts = ViewerOptions.from_any(source=camera, model=model, proc_size=proc_size, device=device, denoise=denoise,
                                  size=window_size)
    win = MainWindow(opts)
    loop = QEventLoop()

    def run_for(sec: float, until=None) -> None:
        deadline = time.perf_counter() + sec
        timer = QTimer()
        timer.timeout.connect(lambda: loop.quit() if (until is not None and until())
                              or time.perf_counter() >= deadline else None)
        timer.start(20)
        loop.exec()
        timer.stop()

    try:
        win.show()
        win.start()
        run_for(120.0, until=lambda: win.shown > 0 or win.session.failed_error is not None)
        if win.shown == 0:
            err = win.session.failed_error or win.banner.text()
            raise RuntimeError(f"viewer showed no frame: {err}")
        run_for(warmup)
        s0 = win.session.stats()
        p = win.session.pipeline
        drop0 = int(s0.get("dropped") or 0)
        in0 = int(s0.get("frames_in") or 0)
        shown0 = win.shown
        win.latency.reset()
        win.latency.keep_all = True
        paint_s0, paint_n0 = win.view.paint_seconds, win.view.paint_count
        t0 = time.perf_counter()
        run_for(seconds)
        elapsed = time.perf_counter() - t0
        shown = win.shown - shown0
        lat = [v * 1000.0 for v in win.latency.all]
        s1 = win.session.stats()
        engine = win.session.engine
        info = win.session.info
        result: dict[str, Any] = {
            "seconds": round(elapsed, 2),
            "source": f"FakeLiveSource {width}x{height} @ {fps:g} FPS",
            "model": win.session.model_name,
            "device": getattr(engine, "device_name", None),
            "precision": getattr(engine, "precision", None),
            "proc_shape": list(engine.proc_shape(info.width, info.height)) if engine and info else None,
            "window": [win.width(), win.height()],
            "frames_shown": shown,
            "display_fps": round(shown / elapsed, 2) if elapsed > 0 else 0.0,
            "latency_ms_median": round(statistics.median(lat), 1) if lat else None,
            "latency_ms_p90": round(_percentile(lat, 0.9), 1) if lat else None,
            "latency_ms_max": round(max(lat), 1) if lat else None,
            "paint_ms_mean": round(1000 * (win.view.paint_seconds - paint_s0)
                                   / max(1, win.view.paint_count - paint_n0), 2),
            "capture_fps": _round(s1.get("capture_fps")),
            "inference_fps": _round(s1.get("inference_fps")),
            "frames_captured": int(s1.get("frames_in") or 0) - in0,
            "dropped": int(s1.get("dropped") or 0) - drop0,
            "pipeline_alive": p is not None and getattr(p, "error", None) is None,
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        }
        result["meets_target"] = bool(
            result["display_fps"] >= TARGET_DISPLAY_FPS and result["latency_ms_median"] is not None
            and result["latency_ms_median"] <= TARGET_MEDIAN_LATENCY_MS)
        return result
    finally:
        win.close()
        win.deleteLater()
        app.processEvents()


def _round(v: Any) -> float | None:
    return round(float(v), 2) if isinstance(v, (int, float)) else None


if __name__ == "__main__":
    import json

    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    print(json.dumps(bench_viewer(secs), indent=2))
