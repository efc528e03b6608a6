"""Command-line promises of the README not covered elsewhere: ``--demo``, the camera options reaching
the capture device, the CLI opening the viewer, and ``bench --viewer``.

The camera is a stand-in: ``camera_device`` names a generated clip instead of ``/dev/video0`` and
``av.open`` records what the capture asks FFmpeg for (format and options) before opening that clip,
which then delivers its frames at its frame rate, as a camera does (read at full speed, a file
would overrun the live source's newest-frame-wins buffer and most frames would be dropped).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import av
import numpy as np
import pytest

from lowlight_app import main  # the lowlight-rt command (viewer included)
from tests import media

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([os.fspath(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- --demo (the README's first command) ------------------------------------------------------------
def test_demo_enhances_the_bundled_clip(capsys, clip, tmp_path, monkeypatch):
    """``lowlight-rt --demo --out demo_clean.mp4`` enhances ``assets/demo/night_demo.mp4`` (here an
    assets folder holding a small clip, found through ``$LOWLIGHT_RT_ASSETS``)."""
    assets = tmp_path / "assets"
    (assets / "demo").mkdir(parents=True)
    media.copy(clip, assets / "demo" / "night_demo.mp4")
    monkeypatch.setenv("LOWLIGHT_RT_ASSETS", str(assets))
    out = tmp_path / "demo_clean.mp4"
    code, _, err = run_cli(capsys, "-q", "--demo", "--out", out)
    assert code == 0, err
    pts_in, size_in = media.read_video_pts(clip)
    pts_out, size_out = media.read_video_pts(out)
    assert pts_out == pts_in and size_out == size_in
    assert media.read_audio_packets(out) == media.read_audio_packets(clip)


def test_demo_with_the_clip_missing_says_how_to_regenerate_it(capsys, tmp_path, monkeypatch):
    """An install without the demo clip: exit 3 and one line naming the path and the command that
    rebuilds it; nothing written."""
    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setenv("LOWLIGHT_RT_ASSETS", str(assets))
    out = tmp_path / "demo_clean.mp4"
    code, _, err = run_cli(capsys, "--demo", "--out", out)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, err
    assert len(lines) == 1 and lines[0].startswith("lowlight-rt: error:"), err
    assert "demo clip missing" in lines[0]
    assert str(assets / "demo" / "night_demo.mp4") in lines[0]
    assert "python -m lowlight_rt.demo --regenerate" in lines[0]
    assert not out.exists()


def test_demo_and_input_together_is_a_usage_error(capsys, clip, tmp_path):
    code, _, err = run_cli(capsys, "--demo", "--input", clip, "--out", tmp_path / "o.mp4")
    assert code == 2 and "exactly one of --input, --camera, --demo" in err


# -- camera options reach the capture device ---------------------------------------------------------
class _Opens(list):
    device = ""


class _PacedCamera:
    """An opened clip that hands out its video packets at the clip's frame rate, as a camera
    delivers frames (everything else is the container's own)."""

    def __init__(self, container) -> None:
        self._container = container
        rate = container.streams.video[0].average_rate if container.streams.video else None
        self._interval = 1.0 / float(rate or 30)

    def __getattr__(self, name):
        return getattr(self._container, name)

    def demux(self, *args, **kwargs):
        for packet in self._container.demux(*args, **kwargs):
            if packet.size and packet.stream.type == "video":
                time.sleep(self._interval)
            yield packet


@pytest.fixture
def camera_opens(clip, tmp_path, monkeypatch) -> list[dict]:
    """Camera 0 is ``clip`` paced at 30 FPS; every camera open is recorded as ``{url, format, options}``."""
    from lowlight_rt.sources import camera

    device = media.copy(clip, tmp_path / "video0.mp4")
    monkeypatch.setattr(camera, "camera_device", lambda index, platform=None: (str(device), "v4l2"))
    opens = _Opens()
    real_open = av.open

    def recording_open(file, *args, **kwargs):
        if kwargs.get("format") in ("v4l2", "avfoundation", "dshow"):
            opens.append({"url": file, "format": kwargs["format"], "options": dict(kwargs.get("options") or {})})
            # the clip, not a v4l2 device
            return _PacedCamera(real_open(file, *args, timeout=kwargs.get("timeout")))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", recording_open)
    opens.device = str(device)
    return opens


CAMERA_ARGS = ["--camera-size", "320x240", "--camera-fps", "15", "--pixel-format", "mjpeg"]
# what FFmpeg's v4l2 demuxer must be asked for (its option names)
V4L2_OPTIONS = {"video_size": "320x240", "framerate": "15", "input_format": "mjpeg"}


def test_camera_options_reach_the_capture_headless(capsys, camera_opens, tmp_path):
    out = tmp_path / "rec.mp4"
    code, _, err = run_cli(capsys, "-q", "--camera", "0", "--no-gui", "--out", out, "--max-frames", "3",
                           *CAMERA_ARGS)
    assert code == 0, err
    assert camera_opens and camera_opens[0]["url"] == camera_opens.device
    assert camera_opens[0]["options"] == V4L2_OPTIONS
    assert len(media.read_video_pts(out)[0]) == 3


def test_camera_without_options_asks_for_nothing(capsys, camera_opens, tmp_path):
    code, _, err = run_cli(capsys, "-q", "--camera", "0", "--no-gui", "--out", tmp_path / "rec.mp4",
                           "--max-frames", "2")
    assert code == 0, err
    assert camera_opens[0]["options"] == {}  # the driver's defaults


def test_pixel_format_key_per_platform(camera_opens):
    """v4l2 calls it ``input_format``; avfoundation and dshow call it ``pixel_format``."""
    from lowlight_rt.sources.camera import CameraSource

    for fmt, key in (("v4l2", "input_format"), ("avfoundation", "pixel_format"), ("dshow", "pixel_format")):
        with CameraSource(0, device=camera_opens.device, input_format=fmt, width=640, height=480, fps=29.97,
                          pixel_format="yuyv422"):
            pass
        assert camera_opens[-1]["format"] == fmt
        assert camera_opens[-1]["options"] == {"video_size": "640x480", "framerate": "29.97", key: "yuyv422"}, fmt


# -- the CLI opens the viewer --------------------------------------------------------------------------
@pytest.fixture
def viewer_windows(qapp, monkeypatch) -> list:
    """Every viewer window the CLI creates (the real MainWindow, remembered for the checks)."""
    import ui.app

    windows: list = []

    class Remembered(ui.app.MainWindow):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            windows.append(self)

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(ui.app, "MainWindow", Remembered)
    return windows


def test_cli_view_opens_the_viewer_with_the_options(capsys, clip, tmp_path, viewer_windows):
    """``--input clip --view`` opens the viewer window on the clip with the command line's settings,
    plays it, and ``--quit-after`` / ``--screenshot`` end it with exit 0 and a picture of the window."""
    shot = tmp_path / "viewer.png"
    code, _, err = run_cli(capsys, "--input", clip, "--view", "--model", "classical", "--strength", "0.7",
                           "--proc-size", "64", "--quit-after", "4", "--screenshot", shot)
    assert code == 0, err
    assert len(viewer_windows) == 1
    win = viewer_windows[0]
    o = win.options
    assert (o.run.source, o.run.model, o.run.strength, o.run.proc_size, o.quit_after) == (str(clip), "classical", 0.7, 64, 4)
    assert win.shown >= 4 and win.session.spec == str(clip)
    assert win.strength_slider.value() == 70 and win.proc_combo.currentData() == 64
    assert win.session.model_name == "classical"
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 100 and img.std() > 5


def test_camera_options_reach_the_capture_in_the_viewer(capsys, camera_opens, viewer_windows):
    """``--camera 0`` (the viewer by default) asks the camera for the same size, rate and format."""
    code, _, err = run_cli(capsys, "--camera", "0", "--model", "classical", "--quit-after", "2", *CAMERA_ARGS)
    assert code == 0, err
    assert len(viewer_windows) == 1
    assert camera_opens and camera_opens[0]["options"] == V4L2_OPTIONS


# -- bench --viewer ------------------------------------------------------------------------------------
#: the shortest bench: one resolution, one run each, no real clip (the file stage's clips are stubbed)
SHORT_BENCH = ["--resolutions", "480p", "--repeats", "1", "--seconds", "0.01", "--no-real-clip"]


def _stub_model_and_file_stages(monkeypatch) -> None:
    """The bench's model-only runs return fixed numbers and its generated clips are 3 frames of
    64x48 (those stages have their own test, tests/test_bench.py)."""
    from lowlight_rt import bench

    def fixed_model_run(engine, width, height, seconds=1.0, batch=1, yuv=False, count=4):
        return {"device": "cpu", "precision": "fp32", "resolution": f"{width}x{height}", "proc_shape": "1x1",
                "batch": batch, "domain": "yuv420p" if yuv else "rgb", "frames": 1, "fps": 1.0,
                "ms_per_frame": 1000.0}

    monkeypatch.setattr(bench, "bench_model", fixed_model_run)
    monkeypatch.setattr(bench, "make_clip", lambda path, **kw: media.make_clip(path, width=64, height=48, frames=3))


def test_bench_viewer_measures_the_viewer(capsys, monkeypatch):
    """``lowlight-rt bench --json --viewer`` adds the viewer's numbers, measured on the real window
    with a 720p@30 fake camera (here shortened, and with the model-only / file stages stubbed: they
    have their own test)."""
    import ui.bench

    calls: list[dict] = []
    real = ui.bench.bench_viewer

    def short_bench_viewer(seconds=10.0, width=1280, height=720, fps=30.0, **kwargs):
        calls.append({"seconds": seconds, "width": width, "height": height, "fps": fps, **kwargs})
        # the real measurement, a fraction of the time, a smaller camera and window
        return real(seconds=0.6, width=320, height=180, fps=fps, warmup=0.2, window_size=(400, 240), **kwargs)

    monkeypatch.setattr(ui.bench, "bench_viewer", short_bench_viewer)
    _stub_model_and_file_stages(monkeypatch)
    code, out, err = run_cli(capsys, "bench", "--json", "--device", "cpu", "--viewer", *SHORT_BENCH)
    assert code == 0, err
    assert calls == [{"seconds": 10.0, "width": 1280, "height": 720, "fps": 30.0, "model": None, "proc_size": None,
                      "denoise": True}]
    v = json.loads(out)["viewer"]
    assert v["frames_shown"] > 0 and v["display_fps"] > 0 and v["pipeline_alive"] is True
    from lowlight_rt.models.catalog import default_model_name

    assert v["source"] == "FakeLiveSource 320x180 @ 30 FPS" and v["model"] == default_model_name()
    assert 0 < v["latency_ms_median"] <= v["latency_ms_p90"] <= v["latency_ms_max"]
    assert isinstance(v["meets_target"], bool)
    assert "viewer      720p@30 fake camera: display" in err


def test_bench_without_viewer_does_not_open_it(capsys, monkeypatch):
    import ui.bench

    monkeypatch.setattr(ui.bench, "bench_viewer", lambda *a, **k: pytest.fail("viewer measured without --viewer"))
    _stub_model_and_file_stages(monkeypatch)
    code, out, err = run_cli(capsys, "bench", "--json", "--device", "cpu", *SHORT_BENCH)
    assert code == 0, err
    assert "viewer" not in json.loads(out)


@pytest.mark.parametrize("args", [("--repeats", "x"), ("--denoise=1",), ("--resolutions", "999p")])
def test_bench_bad_options_are_one_line(capsys, args):
    code, out, err = run_cli(capsys, "bench", *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("lowlight-rt bench: error:"), err
