"""How a run is built: one RunConfig, one builder (``open_run``), the engine owns the processing
shape, and the runtime (``lowlight_rt``) never imports the viewer (``ui``), PyQt6 or ``training``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lowlight_rt.cli import build_parser, config_from_args
from lowlight_rt.config import RunConfig
from lowlight_rt.inference import Engine
from lowlight_rt.models import create_model
from lowlight_rt.models.base import EnhancementModel
from lowlight_rt.run import load_engine, open_run

REPO = Path(__file__).resolve().parents[1]

# -- the runtime without the viewer -----------------------------------------------------------------
_BLOCKER = textwrap.dedent("""
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        # PyQt6, the viewer and the training code must not be imported by the runtime
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("PyQt6", "ui", "training", "lowlight_app"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocked())
""")


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", _BLOCKER + textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)


def test_runtime_imports_and_runs_without_pyqt6_ui_or_training(clip, tmp_path):
    """Every lowlight_rt module imports with PyQt6 / ui / training unimportable; --help and a
    headless file job run; asking for the viewer is one line, not an ImportError."""
    out = tmp_path / "out.mp4"
    proc = _run_blocked(f"""
        import importlib, pkgutil, sys
        import lowlight_rt
        names = [m.name for m in pkgutil.walk_packages(lowlight_rt.__path__, "lowlight_rt.")
                 if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        print("imported", len(names))
        from lowlight_rt.cli import main
        assert main(["--help"]) == 0
        code = main(["-q", "--input", {str(clip)!r}, "--out", {str(out)!r}, "--model", "classical"])
        assert code == 0, code
        code = main(["--input", {str(clip)!r}, "--view"])
        assert code == 4, code
        assert not [m for m in sys.modules if m.split(".")[0] in ("PyQt6", "ui", "training")]
        print("ok")
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout and out.stat().st_size > 0
    assert "the viewer is not part of the runtime package" in proc.stderr


def test_console_script_starts_at_the_launcher():
    text = (REPO / "pyproject.toml").read_text()
    assert 'lowlight-rt = "lowlight_app:main"' in text


# -- one config, one default per setting ------------------------------------------------------------
def test_parser_defaults_are_the_run_config_defaults():
    args = build_parser().parse_args(["--input", "x.mp4"])
    config = config_from_args(args)
    defaults = RunConfig(source="x.mp4")
    assert config == defaults


def test_every_option_reaches_the_run_config():
    args = build_parser().parse_args([
        "--camera", "2", "--out", "r.mp4", "--loop", "--model", "classical", "--device", "cpu", "--fp32",
        "--proc-size", "240", "--strength", "0.5", "--threads", "1", "--batch", "3", "--compile",
        "--side-by-side", "--crf", "23", "--preset", "fast", "--max-frames", "9", "--camera-size", "640x480",
        "--camera-fps", "15", "--pixel-format", "mjpeg", "--timeout", "2.5", "--retries", "1", "-q"])
    config = config_from_args(args)
    assert config == RunConfig(source=2, out="r.mp4", loop=True, model="classical", device="cpu", fp16=False,
                               proc_size=240, strength=0.5, threads=1, batch=3, compile=True, side_by_side=True,
                               crf=23, preset="fast", max_frames=9, camera_size=(640, 480), camera_fps=15.0,
                               pixel_format="mjpeg", timeout=2.5, retries=1, quiet=True)
    assert config.camera_options() == {"width": 640, "height": 480, "fps": 15.0, "pixel_format": "mjpeg"}
    assert config.stream_options() == {"open_timeout": 2.5, "read_timeout": 2.5, "max_retries": 1}


def test_run_config_is_immutable():
    config = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.crf = 30  # type: ignore[misc]
    assert config.replace(crf=30).crf == 30 and config.crf == RunConfig().crf
    with pytest.raises(TypeError):
        config.replace(crff=30)


def test_the_viewer_gets_every_option(monkeypatch, clip):
    """``lowlight-rt --view`` hands the viewer the whole RunConfig (CRF, preset, threads, timeout,
    retries, max frames... were dropped before)."""
    import ui.app
    from lowlight_app import main

    seen = {}

    def fake_viewer(options, **kwargs):
        seen["options"] = options
        seen.update(kwargs)
        return 0

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(ui.app, "run_viewer", fake_viewer)
    code = main(["--input", str(clip), "--view", "--crf", "23", "--preset", "fast", "--threads", "1",
                 "--timeout", "2", "--retries", "1", "--max-frames", "7", "--quit-after", "3"])
    assert code == 0
    config = seen["options"]
    assert (config.crf, config.preset, config.threads, config.timeout, config.retries, config.max_frames) == \
        (23, "fast", 1, 2.0, 1, 7)
    assert config.source == str(clip) and config.loop and seen["quit_after"] == 3


def test_compile_flag_reaches_the_engine():
    engine, _ = load_engine(RunConfig(model="classical", device="cpu", threads=1, compile=True))
    assert engine._compile is True


# -- the builder ------------------------------------------------------------------------------------
def test_open_run_builds_source_sink_and_pipeline(clip, tmp_path):
    config = RunConfig(source=str(clip), out=str(tmp_path / "o.mp4"), model="classical", device="cpu",
                       threads=1, crf=30, preset="ultrafast", quiet=True)
    engine, name = load_engine(config)
    run = open_run(config, engine)
    assert name == "classical" and len(run.sinks) == 1 and run.pipeline.source is run.source
    stats = run.pipeline.run()
    assert stats.frames_out == 30 and (tmp_path / "o.mp4").stat().st_size > 0


# -- the engine owns the processing shape ------------------------------------------------------------
class _Multiple4(EnhancementModel):
    """Identity with a size multiple of 4 (the model the viewer swaps to)."""

    size_multiple = 4
    default_proc_size = 360

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_source_gives_exactly_the_engines_shape_after_a_model_swap():
    """1080p, the 240 preset, then a model with another size multiple: the source downsamples to
    the new shape at once (428x240, not the old 424x240 that the engine would resize again)."""
    config = RunConfig(source="fake:1920x1080@30", proc_size=240, device="cpu", threads=1)
    engine = Engine(create_model("classical"), device="cpu", proc_size=config.proc_size, threads=1)
    run = open_run(config, engine, realtime=True)
    source = run.source
    try:
        frame = source.read(timeout=10)
        assert engine.proc_shape(1920, 1080) == (424, 240)
        assert frame.proc.shape[:2] == (240, 424)
        engine.set_model(_Multiple4())
        want = engine.proc_shape(1920, 1080)
        assert want == (428, 240)
        for _ in range(3):  # the newest frame wins: at most one frame captured before the swap
            frame = source.read(timeout=10)
        assert (frame.proc.shape[1], frame.proc.shape[0]) == want
        assert engine._low(frame, *want) is frame.proc  # the engine uses it as is: no second resize
    finally:
        source.stop()


def test_python_m_ui_takes_its_defaults_from_the_run_config(monkeypatch) -> None:
    """``python -m ui`` restates no run default: device and strength come from ``RunConfig``."""
    import ui.__main__ as entry
    from lowlight_rt.config import RunConfig

    seen = {}
    monkeypatch.setattr(entry, "run_viewer", lambda config, **kw: seen.update(config=config, **kw) or 0)
    assert entry.main(["3", "--split"]) == 0
    config, reference = seen["config"], RunConfig(source=3)
    assert config.source == 3 and seen["mode"] == "split"
    assert (config.device, config.strength, config.fp16) == (reference.device, reference.strength, reference.fp16)
    assert entry.main(["--device", "cpu", "--strength", "0.25"]) == 0
    assert (seen["config"].device, seen["config"].strength) == ("cpu", 0.25)
