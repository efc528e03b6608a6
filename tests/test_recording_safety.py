"""Live recordings survive the ways processes really end: SIGKILL (no handler runs) and a full disk.

Live recordings (camera, stream, headless ``--no-gui --out``, the viewer's record button) are
fragmented MP4s: the runs below are real ``python -m lowlight_app`` (``lowlight-rt``) processes recording a live
stand-in source (``fake:WxH@FPS``, or a file played in the viewer), killed from outside or
stopped by a size limit, and the file they leave is then read with PyAV.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from lowlight_rt.sinks import VideoFileSink
from lowlight_rt.sinks.video import trim_fragmented_mp4
from tests import media

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and resource limits")

#: what a killed recording may lose at its end (the issue's bound)
MAX_LOSS_S = 2.0


def start(*args: str | os.PathLike, preexec_fn=None, **env_vars: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", **env_vars)
    return subprocess.Popen([sys.executable, "-m", "lowlight_app", *map(os.fspath, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)


def wait_for_file(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> float:
    """Block until ``out`` exists (the recording opened); returns that moment (``time.monotonic``).

    The sink is opened before the first frame is captured, so this moment is at or before the
    recording's t = 0: measuring the loss from it can only overstate it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            return time.monotonic()
        if proc.poll() is not None:
            pytest.fail(f"exited early with {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the recording never started")


def read_strictly(path: Path) -> tuple[list[float], int]:
    """Every video frame's time (s) and the number of audio packets; any damaged data raises."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        times = [float(f.pts * s.time_base) for f in c.decode(s)]
    with av.open(os.fspath(path)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.size) if c.streams.audio else 0
    return times, audio


def read_tolerantly(path: Path) -> tuple[list[float], float | None]:
    """Frame times (s) decodable from a file that may end in a torn fragment (a kill mid-write),
    and the end of its audio (s, ``None`` without audio). A torn packet may only be the last."""
    times: list[float] = []
    audio_end: float | None = None
    errors_at: list[int] = []
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        streams = [s, *c.streams.audio[:1]]
        for n, packet in enumerate(c.demux(*streams)):
            if packet.stream.type == "audio":
                if packet.pts is not None and packet.size:
                    audio_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                continue
            try:  # the demuxer's last, empty packet flushes the decoder
                times += [float(f.pts * s.time_base) for f in packet.decode()]
            except av.error.InvalidDataError:
                errors_at.append(n)
    assert len(errors_at) <= 1, f"damaged packets in the middle of the file: {errors_at}"
    return times, audio_end


def sigkill_at_random(proc: subprocess.Popen, opened: float, lo: float = 3.0, hi: float = 4.5) -> float:
    """SIGKILL ``proc`` at a random moment ``lo``..``hi`` s after the file opened; returns that age."""
    when = random.uniform(lo, hi)
    time.sleep(max(0.0, opened + when - time.monotonic()))
    assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic() - opened
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return killed


def assert_continuous(times: list[float], fps: float) -> None:
    """Increasing times with no hole: frames a slow consumer dropped are spread out, not a lost fragment."""
    assert times == sorted(times) and len(set(times)) == len(times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 0.5, f"a {max(gaps):.2f} s hole in the recording (at 1/{fps:g} s per frame)"


def test_sigkill_leaves_a_headless_live_recording_missing_at_most_2_s(tmp_path):
    """``--no-gui --out`` on a live source, SIGKILLed at a random moment 3-4.5 s in: the MP4 opens
    and holds every frame up to at most 2 s before the kill."""
    out = tmp_path / "rec.mp4"
    proc = start("-q", "--input", "fake:320x180@30", "--no-gui", "--out", out)
    opened = wait_for_file(proc, out)
    killed = sigkill_at_random(proc, opened)
    times, _ = read_tolerantly(out)
    assert times, "no frame survived the kill"
    assert killed - times[-1] <= MAX_LOSS_S, f"killed at {killed:.2f} s, the file ends at {times[-1]:.2f} s"
    assert_continuous(times, 30)
    assert times[0] < 1.0


@pytest.mark.slow
def test_sigkill_leaves_the_viewers_recording_with_its_audio(tmp_path):
    """The viewer recording a clip with audio (played in real time), SIGKILLed 3-4 s after Record:
    video up to at most 2 s before the kill, and the audio copied along with it."""
    clip = media.make_clip(tmp_path / "in.mp4", width=192, height=108, frames=240, fps=30, seed=3)
    out = tmp_path / "viewer_rec.mp4"
    proc = start("--input", clip, "--view", "--out", out, QT_QPA_PLATFORM="offscreen")
    opened = wait_for_file(proc, out)
    killed = sigkill_at_random(proc, opened, 3.0, 4.0)
    times, audio_end = read_tolerantly(out)
    assert times and killed - times[-1] <= MAX_LOSS_S, (killed, times[-1:])
    assert_continuous(times, 30)
    assert audio_end is not None, "the recording lost its audio"
    assert abs(audio_end - times[-1]) < 1.0, (audio_end, times[-1])


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_ends_a_live_recording_with_exit_6_and_a_playable_file(tmp_path):
    """A write fails half-way (the file may not grow past 80 kB, like a full disk): exit 6, one
    line, and a file that decodes cleanly to the end (the torn last fragment is cut off)."""
    out = tmp_path / "full.mp4"
    proc = start("-q", "--input", "fake:320x180@30", "--no-gui", "--out", out,
                 preexec_fn=_limit_file_size(80_000))
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the recording did not stop at the size limit")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 6, err
    assert len(lines) == 1 and "File too large" in lines[0] and "partial output saved to" in lines[0], err
    times, _ = read_strictly(out)  # raises on any damaged packet
    assert len(times) >= 10 and out.stat().st_size <= 80_000
    kept, written = map(int, lines[0].rsplit("(", 1)[1].split()[:3:2])  # "(K of N frames)": what the file holds
    assert kept == len(times) <= written
    assert_continuous(times, 30)


def top_level_boxes(data: bytes) -> list[str]:
    """Types of the MP4's top-level boxes, in order (the last may be torn)."""
    kinds, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        kinds.append(data[offset + 4:offset + 8].decode("latin-1"))
        offset += size if size >= 8 else len(data)
    return kinds


def test_trim_keeps_whole_fragments_only(tmp_path):
    """Cut a fragmented MP4 anywhere: trimming leaves a file that decodes cleanly, with every frame
    of the fragments that were whole."""
    path = tmp_path / "frag.mp4"
    clip = media.make_clip(tmp_path / "src.mp4", width=96, height=64, frames=90, fps=30, audio=False)
    from lowlight_rt.sources import FileSource

    with FileSource(clip) as src:
        frames = list(src)
        info = src.info
    sink = VideoFileSink(path, info.width, info.height, time_base=info.time_base, fps=info.fps, fragmented=True)
    for f in frames:
        sink.write(f, f.image)
    sink.close()
    whole, _ = read_strictly(path)
    assert len(whole) == 90
    data = path.read_bytes()
    assert data.count(b"moof") >= 4  # a fragment every half second
    torn = tmp_path / "torn.mp4"
    for cut in range(len(data) * 2 // 5, len(data) - 64, len(data) // 23):  # inside moofs and mdats
        torn.write_bytes(data[:cut])
        size = trim_fragmented_mp4(torn)
        assert size < cut
        assert top_level_boxes(torn.read_bytes())[-1] == "mdat"  # no fragment header without its data
        times, _ = read_strictly(torn)
        # whole fragments end in decode order: a B-frame shown before the last frame may be missing
        assert 0 < len(times) < 90 and set(times) <= set(whole)
        assert times[:-4] == whole[: len(times) - 4]
    assert trim_fragmented_mp4(path) == len(data)  # a whole file is left alone


def test_file_outputs_stay_normal_mp4_with_the_index_first(tmp_path, clip):
    """File to file is not fragmented: one moov, before the media data (faststart)."""
    from lowlight_rt.sources import FileSource

    path = tmp_path / "out.mp4"
    with FileSource(clip) as src:
        frames = list(src)
        info = src.info
    with VideoFileSink(path, info.width, info.height, time_base=info.time_base, fps=info.fps,
                       audio_from=clip) as sink:
        for f in frames:
            sink.write(f, f.image)
    data = path.read_bytes()
    assert b"moof" not in data
    assert 0 < data.index(b"moov") < data.index(b"mdat")
