"""SIGTERM (``kill``, ``timeout``, systemd, ``docker stop``) ends a run like Ctrl-C: the output is
finalised (a playable MP4), one line on stderr, exit 143.

The runs are real ``python -m lowlight_app`` (``lowlight-rt``) processes, signalled from outside while they write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests import media

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32",
                                reason="POSIX signals")


def start(*args: str | os.PathLike, **env_vars: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env_vars)
    return subprocess.Popen([sys.executable, "-m", "lowlight_app", *map(os.fspath, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_writing(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> None:
    """Block until ``out`` holds encoded data (the run is past start-up and model loading)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited early with {proc.returncode}: {proc.stderr.read()}")
        if out.exists() and out.stat().st_size > 4096:
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never started writing")


def terminate(proc: subprocess.Popen, after: float) -> tuple[int, str]:
    time.sleep(after)
    assert proc.poll() is None, "the run ended before it could be terminated"
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("SIGTERM did not end the run within 60 s")
    return proc.returncode, err


def frames_in(path: Path) -> list[float]:
    """Decode every frame (raises if the file is not a finalised, playable video)."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)]


def test_sigterm_finalises_a_live_recording(tmp_path):
    """A live stand-in camera recorded headless: SIGTERM after ~1.5 s of writing -> exit 143, a
    playable MP4 with the frames recorded so far, one stderr line naming the file."""
    out = tmp_path / "rec.mp4"
    proc = start("-q", "--input", "fake:320x180@30", "--no-gui", "--out", out)
    wait_until_writing(proc, out)
    code, err = terminate(proc, after=1.5)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 143, err
    assert len(lines) == 1, err
    assert lines[0].startswith("lowlight-rt: terminated (SIGTERM): recording saved to ") and str(out) in lines[0]
    times = frames_in(out)
    n = int(lines[0].rsplit("(", 1)[1].split()[0])
    assert len(times) == n >= 15  # >= 0.5 s at 30 fps
    assert times == sorted(times) and times[-1] > 0.5


def test_sigterm_finalises_a_partial_file(tmp_path):
    """File to file: SIGTERM mid-way -> exit 143, the frames done so far in a playable MP4 (with
    their original timestamps), one line saying it is partial; the input is untouched."""
    clip = media.make_clip(tmp_path / "long.mp4", width=640, height=360, frames=240, seed=7)
    before = clip.read_bytes()
    out = tmp_path / "out.mp4"
    proc = start("-q", "--input", clip, "--out", out, "--preset", "medium")
    wait_until_writing(proc, out)
    code, err = terminate(proc, after=1.0)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 143, err
    assert len(lines) == 1, err
    assert lines[0].startswith("lowlight-rt: terminated (SIGTERM): partial output saved to ") and str(out) in lines[0]
    n = int(lines[0].rsplit("(", 1)[1].split()[0])
    times = frames_in(out)
    assert 0 < len(times) == n < 240
    original, _ = media.read_video_pts(clip)
    assert times == [float(t) for t in original[:n]]
    assert clip.read_bytes() == before


def sigterm_is_caught(pid: int) -> bool:
    """True once the process has a SIGTERM handler (Linux: bit 15 of ``SigCgt`` in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sigterm_during_start_up_is_one_line(tmp_path):
    """SIGTERM while the run is still starting (importing torch, loading the model): exit 143, one
    line, and no output file left behind (or, if the signal landed later, a playable one)."""
    out = tmp_path / "never.mp4"
    proc = start("-q", "--input", "fake:64x64@5", "--no-gui", "--out", out)
    deadline = time.monotonic() + 60
    while not sigterm_is_caught(proc.pid):  # before that, SIGTERM's default action would apply
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    code, err = terminate(proc, after=0.0)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 143, err
    assert len(lines) == 1 and lines[0].startswith("lowlight-rt: terminated (SIGTERM)"), err
    if out.exists():  # the signal may land once the recording started: then it must be playable
        frames_in(out)


@pytest.mark.slow
def test_sigterm_closes_the_viewer_and_finalises_its_recording(tmp_path):
    """The viewer recording a live stand-in camera: SIGTERM closes it like Ctrl-C, exit 143."""
    out = tmp_path / "viewer_rec.mp4"
    proc = start("--input", "fake:160x96@30", "--view", "--out", out, QT_QPA_PLATFORM="offscreen")
    wait_until_writing(proc, out)
    code, err = terminate(proc, after=1.0)
    assert code == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("lowlight-rt: terminated (SIGTERM)"), err
    assert len(frames_in(out)) >= 10


def test_main_restores_the_sigterm_handler(capsys):
    """In-process callers (tests, scripts) get their own SIGTERM handler back after ``main``."""
    from lowlight_rt.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["--list-models"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
