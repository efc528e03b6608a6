"""End-to-end tests of the ``lowlight-rt`` command: file / image round trips, bad input, partial output.

Most tests call :func:`lowlight_rt.cli.main` in-process (weight-free ``classical`` model, tiny clips);
one runs ``python -m lowlight_rt`` in a subprocess to check the console entry and its exit code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lowlight_rt import __version__
from lowlight_rt.cli import main
from lowlight_rt.inference import Engine
from lowlight_rt.errors import (EXIT_DEVICE, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_OUTPUT,
                                EXIT_PARTIAL, EXIT_USAGE)
from lowlight_rt.sources.file import FileSource
from tests import media

REPO = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "lowlight-rt: error:"


# -- helpers ------------------------------------------------------------------------------------
def run_cli(capsys, *args: str | os.PathLike) -> tuple[int, str, str]:
    """``main([...])`` in-process; returns ``(exit code, stdout, stderr)``."""
    code = main([os.fspath(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha256(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            h.update(p.name.encode())
            if p.is_file():
                h.update(p.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_error_line(err: str, code: int, expected: int) -> str:
    """The run ended with exit ``expected`` and exactly one ``lowlight-rt: error:`` line, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expected, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(ERROR_PREFIX), err
    return lines[0]


def summary_counts(err: str) -> dict[str, int]:
    """Frames in / out and decode errors from the end-of-run summary on stderr."""
    m = re.search(r"frames in/out\s+(\d+) / (\d+)\s+dropped (\d+)\s+decode errors (\d+)", err)
    assert m, err
    return dict(zip(("frames_in", "frames_out", "dropped", "decode_errors"), map(int, m.groups())))


def decode_rgb(path: Path) -> list[np.ndarray]:
    """Every decoded frame of ``path`` as ``(H, W, 3)`` uint8 RGB."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def mean_luma(frames: list[np.ndarray]) -> float:
    return float(np.mean([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).mean() for f in frames]))


def read_image(path: Path) -> np.ndarray:
    """BGR image from a possibly non-ASCII path."""
    img = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slow_engine(monkeypatch):
    """Makes every ``Engine.submit`` take at least 40 ms (so a run lasts long enough to interrupt)."""
    original = Engine.submit

    def submit(self, frames, **kw):
        time.sleep(0.04 * len(frames))
        return original(self, frames, **kw)

    monkeypatch.setattr(Engine, "submit", submit)


# -- informational flags --------------------------------------------------------------------------
def test_version_help_list_models(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == EXIT_OK and __version__ in out
    code, out, _ = run_cli(capsys, "--help")
    assert code == EXIT_OK
    assert "exit codes:" in out and "--timeout" in out and "classical" in out
    code, out, _ = run_cli(capsys, "--list-models")
    assert code == EXIT_OK
    assert any(line.split()[0] == "classical" for line in out.splitlines() if line.strip())


def test_usage_errors_exit_2(capsys, clip):
    code, _, err = run_cli(capsys, "--input", clip)  # no --out
    assert code == EXIT_USAGE and "--out" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "--input", clip, "--camera", "0", "--out", "x.mp4")
    assert code == EXIT_USAGE and "exactly one" in err
    code, _, err = run_cli(capsys, "--input", clip, "--out", "x.mp4", "--strength", "2")
    assert code == EXIT_USAGE and "Traceback" not in err


# -- file round trips ------------------------------------------------------------------------------
def test_file_round_trip(capsys, clip, tmp_path):
    before = sha256(clip)
    out = tmp_path / "clean.mp4"
    code, _, err = run_cli(capsys, "--input", clip, "--out", out)
    assert code == EXIT_OK, err
    counts = summary_counts(err)
    assert counts == {"frames_in": 30, "frames_out": 30, "dropped": 0, "decode_errors": 0}
    pts_in, size_in = media.read_video_pts(clip)
    pts_out, size_out = media.read_video_pts(out)
    assert media.count_decodable_frames(out) == len(pts_in) == 30
    assert pts_out == pts_in
    assert size_out == size_in == (160, 96)
    audio_in = media.read_audio_packets(clip)
    assert audio_in[0], "the test clip has audio"
    assert media.read_audio_packets(out) == audio_in
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "dark test clip"
    assert mean_luma(decode_rgb(out)) > mean_luma(decode_rgb(clip)) + 20
    assert sha256(clip) == before


AUDIO_FRAME_S = 1024 / media.AUDIO_RATE  # one AAC frame: the finest step audio can be cut at


def av_timeline(path: Path) -> tuple[float, float, float]:
    """``(first video frame, first audio packet, last audio packet)`` start times in seconds, read with
    PyAV directly (demuxed / decoded as a player would, MP4 edit lists applied)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        first_video = next(float(f.pts * v.time_base) for f in c.decode(v))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        audio = [float(p.pts * a.time_base) for p in c.demux(a) if p.size and p.pts is not None]
    assert audio, f"{path} has no audio"
    return first_video, audio[0], audio[-1]


@pytest.mark.parametrize("name", ["clip", "ts_clip", "vfr_clip"])
def test_default_file_path_keeps_audio_in_sync(capsys, request, name, tmp_path):
    """``lowlight-rt --input clip --out out.mp4``: video and audio start (and end) where they did in the
    input, to within one audio frame, so lip sync survives (timestamps, not just the packet bytes)."""
    src: Path = request.getfixturevalue(name)
    out = tmp_path / "synced.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", src, "--out", out)
    assert code == EXIT_OK, err
    v_in, a_in, a_last_in = av_timeline(src)
    v_out, a_out, a_last_out = av_timeline(out)
    assert abs(v_out - v_in) < AUDIO_FRAME_S, (v_in, v_out)
    assert abs(a_out - a_in) < AUDIO_FRAME_S, (a_in, a_out)
    assert abs((a_out - v_out) - (a_in - v_in)) < AUDIO_FRAME_S  # the A/V offset a viewer hears
    assert abs((a_last_out - v_out) - (a_last_in - v_in)) < AUDIO_FRAME_S  # and no drift by the end


def test_vfr_pts_preserved(capsys, vfr_clip, tmp_path):
    out = tmp_path / "vfr_out.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", vfr_clip, "--out", out)
    assert code == EXIT_OK, err
    pts_in, _ = media.read_video_pts(vfr_clip)
    pts_out, _ = media.read_video_pts(out)
    assert len(set(np.round(np.diff([float(t) for t in pts_in]), 4))) > 1, "input is really VFR"
    assert pts_out == pts_in
    assert media.read_audio_packets(out) == media.read_audio_packets(vfr_clip)


def test_odd_size_is_padded_to_even(capsys, odd_clip, tmp_path):
    """VideoFileSink pads odd sizes by one replicated edge row / column (853x481 -> 854x482)."""
    out = tmp_path / "odd_out.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", odd_clip, "--out", out)
    assert code == EXIT_OK, err
    pts_in, size_in = media.read_video_pts(odd_clip)
    pts_out, size_out = media.read_video_pts(out)
    assert size_in == (853, 481)
    assert size_out == (854, 482)
    assert pts_out == pts_in
    frame = decode_rgb(out)[0].astype(np.int16)
    # the padding replicates the last real column / row (up to codec error)
    assert np.abs(frame[:, -1] - frame[:, -2]).mean() < 4
    assert np.abs(frame[-1] - frame[-2]).mean() < 4


def test_side_by_side_doubles_width(capsys, clip, tmp_path):
    out = tmp_path / "sbs.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out, "--side-by-side")
    assert code == EXIT_OK, err
    _, size = media.read_video_pts(out)
    assert size == (320, 96)
    frames = decode_rgb(out)
    assert len(frames) == 30
    left, right = frames[5][:, :160], frames[5][:, 160:]
    assert right.mean() > left.mean() + 20  # input | enhanced


def test_strength_zero_is_identity(capsys, clip, tmp_path):
    out = tmp_path / "s0.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out, "--strength", "0", "--crf", "10")
    assert code == EXIT_OK, err
    a = np.stack(decode_rgb(clip)).astype(np.float32)
    b = np.stack(decode_rgb(out)).astype(np.float32)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 2.5  # codec round trip only


def test_max_frames_records_exactly_n_from_live_source(capsys, tmp_path):
    """A live (fake camera) recording stops after exactly --max-frames frames."""
    out = tmp_path / "rec.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", "fake:160x96@60", "--no-gui", "--out", out,
                           "--max-frames", "12")
    assert code == EXIT_OK, err
    pts, size = media.read_video_pts(out)
    assert len(pts) == 12 and size == (160, 96)
    assert all(b > a for a, b in zip(pts, pts[1:]))


def test_ctrl_c_ends_a_live_recording_with_exit_0(capsys, tmp_path, monkeypatch):
    """README: for a live recording (camera / stream, ``--no-gui --out``) Ctrl-C is the normal way to
    stop: exit 0 (not 130), no error line, and a complete, playable file of every frame counted."""
    from lowlight_rt import jobs

    original = jobs._Progress.update_stats

    def interrupting(self, stats):  # Ctrl-C arrives in the main thread while frames are being written
        original(self, stats)
        if stats.frames_out >= 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs._Progress, "update_stats", interrupting)
    out = tmp_path / "rec.mp4"
    # the fake camera stands in for a live source; --max-frames only guards against a run that never stops
    code, _, err = run_cli(capsys, "--input", "fake:160x96@30", "--no-gui", "--out", out, "--max-frames", "600")
    assert code == 0, err
    assert "Traceback" not in err
    assert not [line for line in err.splitlines() if line.startswith("lowlight-rt:")], err
    n = summary_counts(err)["frames_out"]
    assert 5 <= n < 600
    pts, size = media.read_video_pts(out)
    assert len(pts) == n == media.count_decodable_frames(out) and size == (160, 96)
    assert all(b > a for a, b in zip(pts, pts[1:]))


# -- images ----------------------------------------------------------------------------------------
def test_image_folder_round_trip(capsys, image_folder, tmp_path):
    before = sha256(image_folder)
    out = tmp_path / "bright"
    code, _, err = run_cli(capsys, "--input", image_folder, "--out", out)
    assert code == EXIT_OK, err
    assert summary_counts(err)["frames_out"] == 5
    names_in = sorted(p.name for p in image_folder.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names_in
    for name in names_in:
        a, b = read_image(image_folder / name), read_image(out / name)
        assert a.shape == b.shape, name
        assert b.mean() > a.mean() + 10, name
    assert sha256(image_folder) == before


def test_single_image(capsys, image_folder, tmp_path):
    src = image_folder / "img1.jpg"
    out = tmp_path / "one.jpg"
    code, _, err = run_cli(capsys, "-q", "--input", src, "--out", out)
    assert code == EXIT_OK, err
    a, b = read_image(src), read_image(out)
    assert a.shape == b.shape == (30, 50, 3)
    assert b.mean() > a.mean() + 10


def test_image_inputs_refuse_wrong_output_kind(capsys, image_folder, tmp_path):
    """An output that cannot hold the input is a usage error (exit 2); see also test_output_kinds.py."""
    code, _, err = run_cli(capsys, "-q", "--input", image_folder, "--out", tmp_path / "x.mp4")
    assert_one_error_line(err, code, EXIT_USAGE)
    assert not (tmp_path / "x.mp4").exists()
    code, _, err = run_cli(capsys, "-q", "--input", image_folder, "--out", tmp_path / "x.png")
    assert_one_error_line(err, code, EXIT_USAGE)
    assert not (tmp_path / "x.png").exists()


# -- bad input -------------------------------------------------------------------------------------
def test_missing_input(capsys, tmp_path):
    out = tmp_path / "o.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", tmp_path / "nope.mp4", "--out", out)
    assert "not found" in assert_one_error_line(err, code, EXIT_INPUT)
    assert not out.exists()


def test_random_bytes_input(capsys, random_file, tmp_path):
    before = sha256(random_file)
    out = tmp_path / "o.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", random_file, "--out", out)
    assert_one_error_line(err, code, EXIT_INPUT)
    assert sha256(random_file) == before
    assert not out.exists()


def test_folder_without_images(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here")
    before = sha256(empty)
    code, _, err = run_cli(capsys, "-q", "--input", empty, "--out", tmp_path / "out")
    assert_one_error_line(err, code, EXIT_INPUT)
    assert sha256(empty) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damaged", ["truncated_clip", "bitflipped_clip"])
def test_damaged_video_succeeds_with_decode_errors(capsys, request, damaged, tmp_path):
    """Decode errors are skipped and counted; the frames around them are kept."""
    src: Path = request.getfixturevalue(damaged)
    before = sha256(src)
    out = tmp_path / "repaired.mp4"
    code, _, err = run_cli(capsys, "--input", src, "--out", out)
    assert code == EXIT_OK, err
    assert "Traceback" not in err
    counts = summary_counts(err)
    assert counts["decode_errors"] > 0
    assert counts["frames_in"] == counts["frames_out"] > 0
    assert counts["frames_out"] + counts["decode_errors"] >= 15
    pts_out, size = media.read_video_pts(out)
    assert len(pts_out) == counts["frames_out"] and size == (160, 96)
    # every output frame sits at a pts of the undamaged clip, in order
    original, _ = media.read_video_pts(request.getfixturevalue("clip"))
    assert set(pts_out) <= set(original)
    assert pts_out == sorted(pts_out)
    assert sha256(src) == before


def test_camera_absent(capsys, tmp_path):
    out = tmp_path / "x.mp4"
    code, _, err = run_cli(capsys, "-q", "--camera", "57", "--no-gui", "--out", out)
    assert "57" in assert_one_error_line(err, code, EXIT_INPUT)
    assert not out.exists()


def test_stream_unreachable(capsys, tmp_path):
    out = tmp_path / "x.mp4"
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "-q", "--input", f"rtsp://127.0.0.1:{closed_port()}/x", "--no-gui",
                           "--out", out, "--timeout", "2", "--retries", "0")
    assert "unreachable" in assert_one_error_line(err, code, EXIT_INPUT)
    assert time.monotonic() - t0 < 15
    assert not out.exists()


def test_stream_timeout_option_reaches_the_source(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_open_source(spec, **kwargs):
        seen.update(kwargs)
        from lowlight_rt.errors import InputError
        raise InputError("stop here")

    monkeypatch.setattr("lowlight_rt.run.open_source", fake_open_source)
    code, _, err = run_cli(capsys, "-q", "--input", "rtsp://example.invalid/x", "--no-gui",
                           "--out", tmp_path / "x.mp4", "--timeout", "1.5", "--retries", "2")
    assert_one_error_line(err, code, EXIT_INPUT)
    assert seen["stream_options"] == {"open_timeout": 1.5, "read_timeout": 1.5, "max_retries": 2}


def test_output_folder_missing(capsys, clip, tmp_path):
    before = sha256(clip)
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", tmp_path / "no" / "such" / "o.mp4")
    assert_one_error_line(err, code, EXIT_OUTPUT)
    assert sha256(clip) == before


def test_output_is_a_directory(capsys, clip, tmp_path):
    """A video into a folder: the output format cannot hold the input, a usage error."""
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", tmp_path)
    assert "not a folder" in assert_one_error_line(err, code, EXIT_USAGE)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_output_not_writable(capsys, clip, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", ro / "o.mp4")
    finally:
        ro.chmod(0o700)
    assert_one_error_line(err, code, EXIT_OUTPUT)


@pytest.mark.parametrize("spelling", ["same", "dotted", "absolute", "hardlink"])
def test_output_equal_to_input(capsys, clip, tmp_path, monkeypatch, spelling):
    src = media.copy(clip, tmp_path / "in.mp4")
    before = sha256(src)
    monkeypatch.chdir(tmp_path)
    out = {"same": "in.mp4", "dotted": "./sub/../in.mp4", "absolute": str(src),
           "hardlink": "link.mp4"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "hardlink":
        os.link(src, tmp_path / "link.mp4")
    code, _, err = run_cli(capsys, "-q", "--input", "in.mp4", "--out", out)
    assert_one_error_line(err, code, EXIT_OUTPUT)
    assert sha256(src) == before


def test_image_folder_output_equal_to_input(capsys, image_folder):
    before = sha256(image_folder)
    code, _, err = run_cli(capsys, "-q", "--input", image_folder, "--out", image_folder)
    assert_one_error_line(err, code, EXIT_OUTPUT)
    assert sha256(image_folder) == before


def test_unknown_model(capsys, clip, tmp_path):
    out = tmp_path / "o.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out, "--model", "no-such-model")
    assert "no-such-model" in assert_one_error_line(err, code, EXIT_MODEL)
    assert not out.exists()


def test_model_file_is_not_a_checkpoint(capsys, clip, tmp_path):
    fake = tmp_path / "some.txt"
    fake.write_text("this is not a checkpoint\n")
    before = sha256(fake)
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", tmp_path / "o.mp4", "--model", fake)
    assert_one_error_line(err, code, EXIT_MODEL)
    assert sha256(fake) == before
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", tmp_path / "o.mp4",
                           "--model", media.random_bytes_file(tmp_path / "weights.pt"))
    assert_one_error_line(err, code, EXIT_MODEL)


def test_viewer_without_display_is_one_line(capsys, monkeypatch, tmp_path):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    from lowlight_app import main as command  # the lowlight-rt command: the viewer is handed in there

    code = command(["-q", "--camera", "0"])
    err = capsys.readouterr().err
    assert "--no-gui" in assert_one_error_line(err, code, EXIT_DEVICE)


def test_debug_shows_traceback(capsys, tmp_path):
    code, _, err = run_cli(capsys, "-q", "--debug", "--input", tmp_path / "nope.mp4", "--out", tmp_path / "o.mp4")
    assert code == EXIT_INPUT
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith(ERROR_PREFIX)


# -- partial output --------------------------------------------------------------------------------
def test_error_mid_run_gives_partial_playable_output(capsys, clip, tmp_path, monkeypatch):
    """The engine fails on frame 8: exit 6, one line naming the output, a playable file of 8 frames."""
    original = Engine.submit
    done = {"n": 0}

    def failing_submit(self, frames, **kw):
        if done["n"] + len(frames) > 8:
            raise RuntimeError("simulated engine failure")
        done["n"] += len(frames)
        return original(self, frames, **kw)

    monkeypatch.setattr(Engine, "submit", failing_submit)
    before = sha256(clip)
    out = tmp_path / "partial.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out, "--batch", "1")
    line = assert_one_error_line(err, code, EXIT_PARTIAL)
    assert str(out) in line and "partial" in line and "(8 frames)" in line
    assert "simulated engine failure" in line
    pts, _ = media.read_video_pts(out)
    assert media.count_decodable_frames(out) == 8
    original_pts, _ = media.read_video_pts(clip)
    assert pts == original_pts[:8]
    # audio stops with the last written frame
    audio = media.read_audio_packets(out)[0]
    assert 0 < len(audio) < len(media.read_audio_packets(clip)[0])
    assert sha256(clip) == before


def test_source_error_mid_run_gives_partial_output(capsys, clip, tmp_path, monkeypatch):
    """The capture thread dies after 6 frames: the 6 frames are written, exit 6."""
    original = FileSource._frame_from_av
    count = {"n": 0}

    def failing(self, vf, pts, time_base):
        if count["n"] >= 6:
            raise OSError("simulated disk failure")
        count["n"] += 1
        return original(self, vf, pts, time_base)

    monkeypatch.setattr(FileSource, "_frame_from_av", failing)
    out = tmp_path / "partial.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out)
    line = assert_one_error_line(err, code, EXIT_PARTIAL)
    assert str(out) in line and "(6 frames)" in line
    assert media.count_decodable_frames(out) == 6


def test_error_on_first_frame_leaves_no_output(capsys, clip, tmp_path, monkeypatch):
    def broken(self, frames, **kw):
        raise RuntimeError("broken from the start")

    monkeypatch.setattr(Engine, "submit", broken)
    out = tmp_path / "never.mp4"
    code, _, err = run_cli(capsys, "-q", "--input", clip, "--out", out)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error" in err and "broken from the start" in err
    assert not out.exists()


def test_keyboard_interrupt_mid_run(capsys, clip, tmp_path, monkeypatch, slow_engine):
    """Ctrl-C (raised from the progress callback) finalises a playable partial file; exit 130."""
    from lowlight_rt import jobs

    original = jobs._Progress.update_stats

    def interrupting(self, stats):
        original(self, stats)
        if stats.frames_out >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(jobs._Progress, "update_stats", interrupting)
    before = sha256(clip)
    out = tmp_path / "interrupted.mp4"
    code, _, err = run_cli(capsys, "--input", clip, "--out", out)
    assert code == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    m = re.search(r"partial output saved to (.+) \((\d+) frames\)", last)
    assert m and m.group(1) == str(out), last
    n = int(m.group(2))
    assert 3 <= n < 30
    assert media.count_decodable_frames(out) == n
    assert summary_counts(err)["frames_out"] == n
    assert sha256(clip) == before


# -- console entry ---------------------------------------------------------------------------------
def test_console_entry_exit_code(tmp_path):
    """``python -m lowlight_rt`` propagates the exit code and prints one line."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lowlight_rt", "--input", str(tmp_path / "missing.mp4"),
                           "--out", str(tmp_path / "o.mp4")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert_one_error_line(proc.stderr, proc.returncode, EXIT_INPUT)
    assert proc.stdout == ""


# -- bench: tests/test_bench.py --------------------------------------------------------------------


# -- every bad option value is refused at parse time: exit 2, one line naming the valid range ---------
@pytest.mark.parametrize("option,value,expect", [
    ("--proc-size", "0", "64..8192"), ("--proc-size", "-5", "64..8192"), ("--proc-size", "1", "64..8192"),
    ("--proc-size", "abc", "64..8192"), ("--crf", "99", "0..51"), ("--crf", "-1", "0..51"),
    ("--batch", "0", "1..256"), ("--threads", "0", "1..256"), ("--preset", "turbo", "veryfast"),
    ("--retries", "-1", "0..1000"), ("--camera-fps", "0", "> 0"), ("--max-frames", "0", ">= 1"),
    ("--strength", "2", "[0, 1]"), ("--timeout", "-3", "> 0"), ("--camera-size", "big", "WIDTHxHEIGHT"),
    ("--cpu-runtime", "tensorrt", "onnxruntime"),
])
def test_bad_option_values_exit_2_with_one_line(capsys, option, value, expect):
    code, _, err = run_cli(capsys, "--input", "missing.mp4", "--out", "x.mp4", option, value)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and expect in err


def test_proc_size_full_and_sensible_values_are_accepted():
    from lowlight_rt.cli import build_parser

    assert build_parser().parse_args(["--proc-size", "full"]).proc_size == 0   # the engine's full resolution
    assert build_parser().parse_args(["--proc-size", "64"]).proc_size == 64
    assert build_parser().parse_args(["--preset", "ultrafast", "--crf", "0"]).crf == 0


def test_cpu_runtime_reaches_the_engine(capsys, clip, tmp_path, monkeypatch):
    """``--cpu-runtime torch`` builds the engine with torch; the default is onnxruntime (RunConfig's)."""
    from lowlight_rt import run as run_module
    from lowlight_rt.cli import build_parser, config_from_args
    from lowlight_rt.config import RunConfig

    assert config_from_args(build_parser().parse_args([])).cpu_runtime == RunConfig().cpu_runtime == "onnxruntime"
    seen = []
    real_engine = run_module.Engine

    def spy(*args, **kwargs):
        seen.append(kwargs.get("cpu_runtime"))
        return real_engine(*args, **kwargs)
    monkeypatch.setattr(run_module, "Engine", spy)
    code, _, err = run_cli(capsys, "--input", str(clip), "--out", str(tmp_path / "o.mp4"), "--max-frames", "3",
                           "--cpu-runtime", "torch", "--quiet")
    assert code == 0, err
    assert seen == ["torch"]


def test_a_runtime_warning_is_one_line_and_the_run_goes_on(capsys, clip, tmp_path):
    """A checkpoint whose ONNX export is corrupt: the engine falls back to torch, and the user reads one
    ``lowlight-rt: warning:`` line (no file path, no source line); ``--debug`` keeps Python's own format."""
    import torch

    from lowlight_rt.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("realtime", width=4, depth=1, default_proc_size=64).eval()
    ckpt = save_checkpoint(tmp_path / "student.pt", model, {}, onnx_operator=b"not an onnx model")
    code, _, err = run_cli(capsys, "--input", str(clip), "--out", str(tmp_path / "o.mp4"), "--model", str(ckpt),
                           "--quiet")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("lowlight-rt: warning: unreadable ONNX export"), err
    assert (tmp_path / "o.mp4").stat().st_size > 0
