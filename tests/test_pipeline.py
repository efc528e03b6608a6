"""The threaded pipeline: live drop policy, clean shutdown, sinks added / removed mid-run, stats."""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import pytest

from lowlight_rt.inference import Engine
from lowlight_rt.frames import Frame
from lowlight_rt.models import create_model
from lowlight_rt.pipeline import Pipeline
from lowlight_rt.sinks import VideoFileSink
from lowlight_rt.sources import open_source
from lowlight_rt.sources.fake import FakeLiveSource
from tests import media


class RecordingSink:
    """Remembers what it was given: frame indices, pts, latency, and how it was closed."""

    def __init__(self, write_delay: float = 0.0) -> None:
        self.indices: list[int] = []
        self.pts: list[int | None] = []
        self.latencies: list[float] = []
        self.shapes: list[tuple[int, ...]] = []
        self.closed_with: bool | None = None
        self.closed = False
        self.write_delay = write_delay

    def write(self, frame: Frame, enhanced: np.ndarray) -> None:
        if self.closed:
            raise RuntimeError("write after close")
        if self.write_delay:
            time.sleep(self.write_delay)
            if self.closed:
                raise RuntimeError("closed while writing")
        assert enhanced.shape == frame.image.shape and enhanced.dtype == np.uint8
        self.indices.append(frame.index)
        self.pts.append(frame.pts)
        self.shapes.append(enhanced.shape)
        self.latencies.append(time.perf_counter() - frame.capture_time)

    def close(self, partial: bool = False) -> None:
        if not self.closed:
            self.closed, self.closed_with = True, partial


def make_engine() -> Engine:
    return Engine(create_model("classical"), device="cpu", threads=1)


def slow_down(engine: Engine, seconds: float) -> Engine:
    """Every batch takes at least ``seconds`` more (a deliberately slow model)."""
    submit = engine.submit

    def slow_submit(frames):
        time.sleep(seconds)
        return submit(frames)

    engine.submit = slow_submit  # the inference worker calls engine.submit
    return engine


def lowlight_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("lowlight") and t.is_alive()}


@pytest.fixture
def no_thread_left():
    """Fails the test if a ``lowlight*`` thread started during it is still alive at the end."""
    before = lowlight_threads()
    yield
    left = lowlight_threads() - before
    assert not left, f"threads left running: {sorted(t.name for t in left)}"


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# -- files -----------------------------------------------------------------------------------------
def test_file_run_every_frame_in_order_and_stats(clip, no_thread_left):
    engine = make_engine()
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink], batch_size=2)
    seen = []
    stats = pipeline.run(progress=seen.append, interval=0.05)
    assert pipeline.completed and pipeline.finished and pipeline.error is None
    assert sink.indices == list(range(30))
    pts_in, _ = media.read_video_pts(clip)
    assert [p * source.info.time_base for p in sink.pts] == pts_in
    assert sink.closed_with is False  # complete output
    assert stats.frames_in == stats.frames_out == 30
    assert stats.dropped == stats.decode_errors == stats.reconnects == 0
    assert stats.error is None
    assert stats.elapsed_s > 0 and stats.output_fps > 0 and stats.capture_fps > 0
    assert stats.infer_ms_per_frame > 0 and stats.inference_fps > 0 and stats.write_ms_per_frame >= 0
    assert seen and seen[-1].frames_out == 30  # the last progress call sees the final counts
    assert all(a.frames_out <= b.frames_out for a, b in zip(seen, seen[1:]))
    assert all(s.frames_in >= s.frames_out for s in seen)
    assert pipeline.latest.count == 30
    pipeline.stop()  # idempotent after run()


def test_max_frames_is_exact_and_cuts_the_output(clip, no_thread_left):
    engine = make_engine()
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    sink = RecordingSink()
    stats = Pipeline(source, engine, [sink], batch_size=4).run(max_frames=7)
    assert stats.frames_out == 7 and sink.indices == list(range(7))
    assert sink.closed_with is True  # a file's audio must stop with the last frame


def test_engine_error_mid_run(clip, no_thread_left):
    engine = make_engine()
    submit = engine.submit
    count = {"n": 0}

    def failing(frames):
        if count["n"] >= 5:
            raise RuntimeError("engine broke")
        count["n"] += len(frames)
        return submit(frames)

    engine.submit = failing
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink], batch_size=1)
    with pytest.raises(RuntimeError, match="engine broke"):
        pipeline.run(interval=0.05)
    assert sink.indices == list(range(5))  # frames enhanced before the error are written
    assert sink.closed_with is True
    assert not pipeline.completed and isinstance(pipeline.error, RuntimeError)
    assert pipeline.stats.error == "engine broke"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError])
def test_progress_callback_exception_finalises_and_stops(clip, no_thread_left, exc):
    """Ctrl-C (or a failing progress callback) stops every thread and closes sinks as partial."""
    engine = slow_down(make_engine(), 0.02)
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink])

    def progress(stats):
        if stats.frames_out >= 2:
            raise exc("stop")

    with pytest.raises(exc):
        pipeline.run(progress=progress, interval=0.02)
    assert sink.closed_with is True
    assert 2 <= len(sink.indices) < 30
    assert sink.indices == list(range(len(sink.indices)))
    assert pipeline.stats.frames_out == len(sink.indices)


def test_partial_video_file_is_playable(clip, tmp_path, no_thread_left):
    engine = slow_down(make_engine(), 0.01)
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    info = source.info
    out = tmp_path / "cut.mp4"
    sink = VideoFileSink(out, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         audio_from=str(clip))
    pipeline = Pipeline(source, engine, [sink])
    pipeline.start()
    wait_until(lambda: pipeline.stats.frames_out >= 6)
    pipeline.stop()
    n = pipeline.stats.frames_out
    assert 6 <= n < 30 and not pipeline.completed
    assert media.count_decodable_frames(out) == n == sink.frames_written


# -- live ------------------------------------------------------------------------------------------
def test_live_drop_policy_with_slow_engine(no_thread_left):
    """A 200 FPS fake camera into a ~25 FPS engine: frames are dropped and counted, never queued."""
    engine = slow_down(make_engine(), 0.04)
    source = FakeLiveSource(160, 96, fps=200.0, proc_shape=engine.proc_shape)
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink], batch_size=8)
    assert pipeline.worker.batch_size == 1  # live sources never batch
    stats = pipeline.run(max_frames=15, interval=0.05)
    assert len(sink.indices) == stats.frames_out == 15
    # drops: counted, consistent, visible as gaps in the strictly increasing indices
    assert stats.dropped > 0 and stats.dropped == source.stats.dropped
    assert all(b > a for a, b in zip(sink.indices, sink.indices[1:]))
    assert sink.indices[-1] - sink.indices[0] > len(sink.indices)
    assert stats.frames_in >= stats.frames_out + stats.dropped
    # latency stays bounded: newest frame wins, so it does not grow with the backlog
    assert statistics.median(sink.latencies) < 0.5
    assert max(sink.latencies[5:]) < 1.0
    assert statistics.median(sink.latencies[-5:]) < statistics.median(sink.latencies[:5]) + 0.25
    assert stats.latency_ms_median > 0


def test_live_stop_mid_run_and_add_remove_sink(tmp_path, no_thread_left):
    """The viewer's record button: a file sink added and removed while frames flow is a valid MP4."""
    engine = make_engine()
    source = FakeLiveSource(160, 96, fps=60.0, proc_shape=engine.proc_shape)
    pipeline = Pipeline(source, engine)
    pipeline.start()
    try:
        wait_until(lambda: pipeline.latest.count >= 3)
        info = source.info
        out = tmp_path / "rec.mp4"
        rec = VideoFileSink(out, info.width, info.height, time_base=info.time_base, fps=info.fps)
        pipeline.add_sink(rec)
        wait_until(lambda: rec.frames_written >= 10)
        pipeline.remove_sink(rec)
        assert rec.closed
        shown = pipeline.latest.count
        wait_until(lambda: pipeline.latest.count >= shown + 3)  # still running without the sink
        assert pipeline.error is None and not pipeline.finished
    finally:
        pipeline.stop()
    assert pipeline.finished and pipeline.error is None
    pts, size = media.read_video_pts(out)
    assert len(pts) == rec.frames_written >= 10 and size == (160, 96)
    assert all(b > a for a, b in zip(pts, pts[1:]))


def test_remove_sink_waits_for_a_write_in_progress(no_thread_left):
    """remove_sink() never closes a sink while the writer thread is inside its write()."""
    engine = make_engine()
    source = FakeLiveSource(64, 48, fps=100.0)
    pipeline = Pipeline(source, engine)
    pipeline.start()
    try:
        for _ in range(5):
            sink = RecordingSink(write_delay=0.03)
            pipeline.add_sink(sink)
            wait_until(lambda: len(sink.indices) >= 1)
            pipeline.remove_sink(sink)
            assert sink.closed  # finalised at its last frame (closed as partial: audio stops there)
        time.sleep(0.1)
        assert pipeline.error is None, pipeline.error
    finally:
        pipeline.stop()
    assert pipeline.error is None


def test_stop_before_start_and_twice(clip, no_thread_left):
    engine = make_engine()
    source = open_source(str(clip))
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink])
    pipeline.stop()
    pipeline.stop()
    assert sink.closed_with is True and sink.indices == []


def test_live_source_error_reaches_run(no_thread_left):
    def generator(i):
        if i >= 4:
            raise OSError("camera unplugged")
        return np.full((48, 64, 3), 10, np.uint8)

    engine = make_engine()
    source = FakeLiveSource(64, 48, fps=100.0, generator=generator)
    sink = RecordingSink()
    pipeline = Pipeline(source, engine, [sink])
    with pytest.raises(OSError, match="camera unplugged"):
        pipeline.run(interval=0.02)
    assert 1 <= len(sink.indices) <= 4 and sink.closed_with is True
