"""An output that cannot hold the input is a usage error (exit 2, one line saying so), found before
the model is loaded or anything is written; a viewer that cannot open a window is exit 7, one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lowlight_app import main  # the lowlight-rt command (viewer included)
from lowlight_rt import cli
from ui import display
from tests import media

REPO = Path(__file__).resolve().parents[1]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lowlight-rt: error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_model_loaded(monkeypatch):
    """Fails the test if the run gets as far as loading the model."""
    def refuse(args):
        raise AssertionError("the output check should come before loading the model")

    monkeypatch.setattr(cli, "_build_engine", refuse)


@pytest.fixture
def three_images(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"p{i}.png"), np.full((16, 24, 3), 20 * i, np.uint8))
    return d


@pytest.mark.parametrize("out,words", [
    ("x.mp4", "an image input gives images, not a video"),
    ("x.webm", "an image input gives images, not a video"),
    ("x.png", "3 input images need an output folder"),
])
def test_image_folder_into_the_wrong_kind(capsys, three_images, tmp_path, no_model_loaded, out, words):
    code = main(["-q", "--input", os.fspath(three_images), "--out", os.fspath(tmp_path / out)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and words in line
    assert not (tmp_path / out).exists()


def test_single_image_into_a_video(capsys, three_images, tmp_path, no_model_loaded):
    code = main(["-q", "--input", os.fspath(three_images / "p1.png"), "--out", os.fspath(tmp_path / "x.mov")])
    assert code == 2 and "not a video" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("out,words", [
    ("x.png", "needs a video file output (.mp4, .mkv, .mov), not an image"),
    ("x.jpg", "not an image"),
    ("existing_folder", "not a folder"),
    ("new_folder/", "not a folder"),
    ("x.webm", "WebM cannot hold the H.264 video"),
    ("x.xyz", "cannot tell a video format from '.xyz'"),
    ("no_extension", "cannot tell a video format from a name without extension"),
])
def test_video_into_the_wrong_kind(capsys, clip, tmp_path, no_model_loaded, out, words):
    (tmp_path / "existing_folder").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    target = os.fspath(tmp_path / out) + ("/" if out.endswith("/") else "")
    code = main(["-q", "--input", os.fspath(clip), "--out", target])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and words in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def test_live_source_into_an_image(capsys, tmp_path, no_model_loaded):
    code = main(["-q", "--input", "fake:64x64@10", "--no-gui", "--out", os.fspath(tmp_path / "rec.png")])
    assert code == 2 and "not an image" in one_error_line(capsys.readouterr().err)


def test_container_that_cannot_hold_the_audio(capsys, clip, tmp_path):
    """Found by the video sink once the input's audio is known: still exit 2, no file left."""
    import av

    with av.open(os.fspath(tmp_path / "probe.ts"), "w") as probe:
        if "aac" in probe.supported_codecs:
            pytest.skip("this FFmpeg's MPEG-TS muxer takes AAC")
    (tmp_path / "probe.ts").unlink(missing_ok=True)
    out = tmp_path / "x.ts"
    code = main(["-q", "--input", os.fspath(clip), "--out", os.fspath(out)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "cannot be stored in .ts" in line and "use .mkv" in line
    assert not out.exists()


def test_outputs_that_can_hold_the_input_still_work(capsys, clip, three_images, tmp_path):
    assert main(["-q", "--input", os.fspath(clip), "--out", os.fspath(tmp_path / "ok.mkv")]) == 0
    assert media.count_decodable_frames(tmp_path / "ok.mkv") == 30
    assert main(["-q", "--input", os.fspath(three_images), "--out", os.fspath(tmp_path / "bright")]) == 0
    assert len(list((tmp_path / "bright").iterdir())) == 3
    single = tmp_path / "one"
    single.mkdir()
    cv2.imwrite(str(single / "only.png"), np.full((16, 24, 3), 30, np.uint8))
    assert main(["-q", "--input", os.fspath(single), "--out", os.fspath(tmp_path / "only_bright.jpg")]) == 0
    assert (tmp_path / "only_bright.jpg").exists()
    capsys.readouterr()


# -- the viewer without a usable display ------------------------------------------------------------------
def _viewer_must_not_start(*args, **kwargs):
    # reaching Qt here would abort the whole test process (Qt's answer to a missing display)
    raise AssertionError("the viewer was started although the display check should have refused")


@pytest.fixture
def linux_without_display(monkeypatch):
    import ui.app

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ui.app, "run_viewer", _viewer_must_not_start)
    return monkeypatch


def test_viewer_without_display(capsys, linux_without_display):
    code = main(["--input", "fake:64x64@10", "--view"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 7 and "no display" in line and "--no-gui" in line and "xvfb-run" in line


def test_viewer_when_the_xcb_plugin_cannot_load(capsys, linux_without_display):
    """The plugin's system libraries are missing: one line naming the library and the packages."""
    linux_without_display.setenv("DISPLAY", ":97")

    def missing(path):
        raise OSError(f"libxcb-icccm.so.4: cannot open shared object file: No such file or directory")

    linux_without_display.setattr(display, "_load_library", missing)
    code = main(["--input", "fake:64x64@10", "--view"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 7, line
    assert "xcb platform plugin does not load (libxcb-icccm.so.4 not found)" in line
    for package in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"):
        assert package in line


def test_viewer_when_no_x_server_answers(capsys, linux_without_display):
    try:
        display._load_library("libxcb.so.1")
    except OSError:
        pytest.skip("libxcb is not installed")
    linux_without_display.setenv("DISPLAY", ":97")  # no X server there
    linux_without_display.setattr(display, "_xcb_plugin_problem", lambda: None)
    code = main(["--input", "fake:64x64@10", "--view"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 7 and "cannot connect to the X server at DISPLAY=:97" in line


@pytest.mark.parametrize("platform", ["offscreen", "minimal"])
def test_headless_qt_platforms_need_no_display(linux_without_display, platform):
    linux_without_display.setenv("QT_QPA_PLATFORM", platform)
    display.check_display()  # no error


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Qt's Linux platform")
def test_viewer_with_a_dead_display_is_one_line_not_a_qt_abort(tmp_path):
    """The real thing, in a subprocess: DISPLAY points nowhere and Qt picks xcb. Whether the plugin's
    libraries are missing (this CI image) or the X server does not answer, the run ends with exit 7
    and one line, not Qt's multi-line abort (exit 134)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update(DISPLAY=":97", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lowlight_app", "--input", "fake:64x64@10", "--view"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 7, proc.stderr
    line = one_error_line(proc.stderr)
    assert "xcb platform plugin does not load" in line or "cannot connect to the X server" in line
