"""A live source feeding stages slower than itself: memory stays bounded (newest frame wins, drops
counted), and a writer that cannot keep up says so once ("encoding overloaded") instead of silently
dropping frames."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np

from lowlight_rt.inference import Engine
from lowlight_rt.frames import Frame
from lowlight_rt.jobs import OverloadMonitor
from lowlight_rt.models import create_model
from lowlight_rt.pipeline import Pipeline, PipelineStats
from lowlight_rt.sources.fake import FakeLiveSource


class SlowSink:
    """Takes ``delay`` seconds per frame (an encoder that cannot keep up)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.frames = 0

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        time.sleep(self.delay)
        self.frames += 1

    def close(self, partial: bool = False) -> None:
        pass


def frames_alive() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Frame)


def test_live_source_memory_stays_bounded_with_a_slow_writer():
    """240 fps of 320x180 into a writer managing 20 fps: for 2 s the frames alive stay a handful
    (the source's slot, the inference batch, the bounded hand-over queue), the rest are dropped."""
    engine = Engine(create_model("classical"), device="cpu", threads=1)
    source = FakeLiveSource(320, 180, fps=240)
    sink = SlowSink(0.05)
    pipeline = Pipeline(source, engine, [sink])
    baseline = frames_alive()
    pipeline.start()
    try:
        samples = []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            time.sleep(0.25)
            samples.append(frames_alive() - baseline)
    finally:
        pipeline.stop()
    stats = pipeline.stats
    assert stats.frames_in > 3 * stats.frames_out  # the source ran far ahead of the writer...
    assert stats.dropped >= stats.frames_in - stats.frames_out - 12  # ...and what it did not hand over was dropped
    assert max(samples) <= 16, samples  # 1 slot + 1 in inference + 8 queued + 1 writing + 1 shown, not hundreds


def ticks(write_ms: float, fps: float, drops_per_tick: int, seconds: float = 4.0, dt: float = 0.5):
    """Stats as the pipeline reports them every ``dt`` s for a live source at ``fps`` whose writer
    takes ``write_ms`` per frame (cumulative averages, as in :class:`PipelineStats`)."""
    out, dropped = 0, 0
    for i in range(1, int(seconds / dt) + 1):
        out += int(round(dt * min(fps, 1000.0 / write_ms)))
        dropped += drops_per_tick
        yield PipelineStats(frames_in=out + dropped, frames_out=out, dropped=dropped, elapsed_s=i * dt,
                            write_ms_per_frame=write_ms)


def test_overload_monitor_warns_once_when_the_writer_is_the_bottleneck():
    monitor = OverloadMonitor(fps=30)
    messages = [m for s in ticks(write_ms=50, fps=30, drops_per_tick=5) if (m := monitor.update(s))]
    assert len(messages) == 1
    assert "encoding overloaded" in messages[0] and "50 ms" in messages[0] and "33 ms" in messages[0]
    assert monitor.message == messages[0]


def test_overload_monitor_stays_quiet_otherwise():
    def quiet(monitor: OverloadMonitor, stats) -> bool:
        return not any(monitor.update(s) for s in stats)

    # a writer fast enough, frames dropped elsewhere (a slow model): not the writer's fault
    assert quiet(OverloadMonitor(30), ticks(write_ms=10, fps=30, drops_per_tick=5))
    # a slow writer but nothing dropped (yet)
    assert quiet(OverloadMonitor(30), ticks(write_ms=50, fps=30, drops_per_tick=0))
    # a slow first second only (encoder start-up), fine afterwards: the window forgets it
    m = OverloadMonitor(30)
    early = [PipelineStats(frames_out=5, dropped=10, elapsed_s=0.5, write_ms_per_frame=200),
             PipelineStats(frames_out=10, dropped=20, elapsed_s=1.0, write_ms_per_frame=150)]
    later = [PipelineStats(frames_out=10 + 15 * i, dropped=20, elapsed_s=1.0 + 0.5 * i,
                           write_ms_per_frame=(1500 + 15 * i * 10) / (10 + 15 * i)) for i in range(1, 9)]
    assert quiet(m, early + later)
    # unknown frame rate: cannot tell
    assert quiet(OverloadMonitor(None), ticks(write_ms=50, fps=30, drops_per_tick=5))


def test_headless_recording_says_encoding_overloaded_once(tmp_path, monkeypatch, capfd, one_thread):
    """The CLI recording a 30 fps live source with an encoder slowed to ~70 ms per frame: one warning
    line while it runs, repeated in the summary."""
    from lowlight_rt.cli import main
    from lowlight_rt.sinks.video import VideoFileSink

    write = VideoFileSink.write

    def slow_write(self, frame, enhanced):
        time.sleep(0.07)
        write(self, frame, enhanced)

    monkeypatch.setattr(VideoFileSink, "write", slow_write)
    out = tmp_path / "rec.mp4"
    assert main(["--input", "fake:160x96@30", "--no-gui", "--out", str(out), "--max-frames", "45"]) == 0
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "lowlight-rt: warning: encoding overloaded" in line]
    assert len(warnings) == 1, err
    assert "warning         encoding overloaded" in err  # and in the summary


def test_progress_bar_total_is_capped_by_max_frames():
    from types import SimpleNamespace

    from lowlight_rt.jobs import _progress_bar

    def total(frame_count, max_frames):
        bar = _progress_bar(SimpleNamespace(info=SimpleNamespace(frame_count=frame_count)), Path("o.mp4"), max_frames)
        try:
            return bar.bar.total
        finally:
            bar.close()

    assert total(300, 10) == 10
    assert total(300, None) == 300
    assert total(None, 10) == 10          # a live source: the cap is the only total
    assert total(5, 10) == 5
