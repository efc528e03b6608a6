"""RTSP against a real RTSP server on 127.0.0.1 (GStreamer's rtsp-server, ``tests/rtsp_server.py``,
run by the system python), and against a server that accepts the connection and never answers.

Without the Debian packages (see ``.ci/run``) the real-server tests skip, saying what is missing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lowlight_rt.cli import main
from lowlight_rt.sources import StreamSource, open_source
from tests import media

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


def _rtsp_missing() -> str | None:
    """Why the real RTSP server cannot run here, or ``None``."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    try:
        r = subprocess.run([SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), "--check"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}"
    if r.returncode != 0:
        why = (r.stdout + r.stderr).strip().splitlines()
        return ("GStreamer RTSP server not available (apt-get install gir1.2-gst-rtsp-server-1.0 "
                f"python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good): {why[-1] if why else r.returncode}")
    return None


MISSING = _rtsp_missing()
needs_server = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """``tests/rtsp_server.py`` in its own process; :meth:`kill` and :meth:`start` again on the same port."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"rtsp://127.0.0.1:{self.port}/clip"

    def start(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the port may take a moment to be free again after a kill
            self.proc = subprocess.Popen([SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), str(self.port),
                                          str(self.clip)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
            line = self.proc.stdout.readline().strip()
            if line == "ready":
                return
            self.proc.wait(5)
            if time.monotonic() > deadline:
                pytest.fail(f"the RTSP server did not start: {line!r}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory) -> Path:
    """10 s, 160x96 at 30 fps, H.264 (every session starts at the clip's start, a keyframe)."""
    return media.make_clip(tmp_path_factory.mktemp("rtsp") / "clip.mp4", frames=300, fps=30, audio=False, seed=9)


@pytest.fixture
def rtsp_server(rtsp_clip):
    server = RtspServer(rtsp_clip)
    server.start()
    yield server
    server.kill()


@needs_server
def test_record_from_a_real_rtsp_server(rtsp_server, tmp_path, one_thread, capfd):
    """``--input rtsp://... --no-gui --out`` records a live, crash-safe MP4 of the frames it got."""
    out = tmp_path / "rtsp.mp4"
    code = main(["--input", rtsp_server.url, "--no-gui", "--out", str(out), "--max-frames", "45", "--timeout", "5"])
    err = capfd.readouterr().err
    assert code == 0, err
    times, size = media.read_video_pts(out)
    assert size == (160, 96) and len(times) == 45 and times == sorted(times)
    assert b"moof" in out.read_bytes()  # a live recording: fragmented
    assert "frames in/out" in err


@needs_server
def test_rtsp_server_killed_mid_stream_reconnects_with_backoff(rtsp_server):
    """The server dies (SIGKILL) after ~1 s of streaming and is back 1.5 s later: the source keeps
    retrying (delays 0.2, 0.4, 0.8, 1.0 s...), reconnects soon after the server is back, goes on
    counting frames, and its pts keep increasing."""
    src = StreamSource(rtsp_server.url, open_timeout=3, read_timeout=2, max_retries=8, backoff=(0.2, 1.0))
    frames = []
    with src:
        while len(frames) < 30:
            frames.append(src.read(timeout=5))
        rtsp_server.kill()
        killed = time.monotonic()
        restart = threading.Timer(1.5, rtsp_server.start)
        restart.start()
        deadline = time.monotonic() + 30
        back_after = None
        while (src.stats.reconnects < 1 or len(frames) < 60) and time.monotonic() < deadline:
            try:
                frames.append(src.read(timeout=1))
            except TimeoutError:
                continue  # no frame while the server is down
            if back_after is None and src.stats.reconnects:
                back_after = time.monotonic() - killed
        restart.join()
        stats = src.stats.snapshot()
    assert stats["reconnects"] >= 1, stats
    assert len(frames) >= 60 and None not in frames
    # not before the server was back; then within the capped delay (1 s) plus connecting
    assert back_after is not None and 1.5 <= back_after < 6.0, back_after
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)  # one timeline across the reconnect
    assert stats["captured"] >= len(frames) and stats["captured"] - stats["dropped"] - len(frames) in (0, 1)


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word (a hung camera / server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield sock.getsockname()[1]
    sock.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_server_that_never_answers_is_exit_3_timed_out(silent_server, tmp_path, scheme, capfd):
    """Connected but no reply: exit 3 after --timeout, one line that says "timed out"."""
    out = tmp_path / "never.mp4"
    url = f"{scheme}://127.0.0.1:{silent_server}/live"
    args = ["-q", "--input", url, "--out", str(out), "--timeout", "1"]
    t0 = time.monotonic()
    code = main(args + (["--no-gui"] if scheme == "rtsp" else []))
    elapsed = time.monotonic() - t0
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 3 and len(err) == 1, err
    assert "timed out" in err[0] and url in err[0], err
    assert elapsed < 30 and not out.exists()


def test_open_source_on_a_silent_server_times_out(silent_server):
    t0 = time.monotonic()
    from lowlight_rt.errors import InputError

    with pytest.raises(InputError, match="timed out after"):
        open_source(f"rtsp://127.0.0.1:{silent_server}/x", stream_options={"open_timeout": 1, "read_timeout": 1})
    assert 0.9 <= time.monotonic() - t0 < 10
