"""Sources: file / images / camera / stream / fake live, buffers, bad inputs, clean shutdown."""

from __future__ import annotations

import functools
import http.server
import socket
import sys
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from lowlight_rt.errors import InputError
from lowlight_rt.frames import FixedShape, processing_shape
from lowlight_rt.sources import (
    BoundedFrameQueue,
    CameraSource,
    FakeLiveSource,
    FileSource,
    ImageSource,
    LatestFrameBuffer,
    StreamSource,
    open_source,
    source_kind,
)
from lowlight_rt.sources.base import THREAD_PREFIX
from lowlight_rt.frames import Frame
from tests import media


def _source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every test must leave no capture thread running."""
    yield
    deadline = time.monotonic() + 2.0
    while _source_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _source_threads(), f"capture threads left running: {_source_threads()}"


def _frame(i: int) -> Frame:
    return Frame(image=np.zeros((2, 2, 3), np.uint8), index=i)


# -- buffers ------------------------------------------------------------------------------------
def test_latest_frame_buffer_newest_wins_and_counts_drops():
    buf = LatestFrameBuffer()
    for i in range(5):
        assert buf.put(_frame(i))
    assert buf.dropped == 4
    assert buf.get(timeout=0.1).index == 4
    with pytest.raises(TimeoutError):
        buf.get(timeout=0.02)
    buf.finish()
    assert buf.get() is None


def test_bounded_queue_back_pressure_order_and_error():
    q = BoundedFrameQueue(maxsize=2)
    produced = []

    def producer():
        for i in range(6):
            q.put(_frame(i))
            produced.append(i)
        q.finish(RuntimeError("boom"))

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.1)
    assert len(produced) == 2  # blocked: the queue is full, nothing is dropped
    got = [q.get(timeout=1).index for _ in range(6)]
    t.join(1)
    assert got == list(range(6))
    with pytest.raises(RuntimeError, match="boom"):
        q.get(timeout=1)


def test_bounded_queue_cancel_unblocks_producer():
    q = BoundedFrameQueue(maxsize=1)
    assert q.put(_frame(0))
    result = []
    t = threading.Thread(target=lambda: result.append(q.put(_frame(1))))
    t.start()
    time.sleep(0.05)
    q.cancel()
    t.join(1)
    assert result == [False] and not t.is_alive()


# -- file source --------------------------------------------------------------------------------
def test_file_source_every_frame_in_order_with_pts(clip):
    times, _ = media.read_video_pts(clip)
    with open_source(clip) as src:
        assert isinstance(src, FileSource)
        info = src.info
        frames = list(src)
    assert (info.width, info.height, info.fps, info.frame_count) == (160, 96, 30.0, 30)
    assert info.audio_stream_indices and info.metadata.get("title") == "dark test clip"
    assert [f.index for f in frames] == list(range(30))
    assert [Fraction(f.pts) * f.time_base for f in frames] == times
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.proc is None for f in frames)  # no shape rule: nothing to downsample
    assert frames[0].capture_time <= frames[-1].capture_time
    assert src.stats.captured == 30 and src.stats.decode_errors == 0 and src.stats.dropped == 0


def test_file_source_vfr_pts(vfr_clip):
    times, _ = media.read_video_pts(vfr_clip)
    with open_source(vfr_clip) as src:
        got = [f.time for f in src]
    assert len(got) == 30
    assert got == [float(t) for t in times]
    steps = np.diff(got)
    assert steps.max() > 1.5 * steps.min()  # really variable


def test_file_source_proc_downsampled_in_capture_thread(odd_clip):
    with open_source(odd_clip, proc_shape=FixedShape(120, 8)) as src:
        frames = list(src)
    pw, ph = processing_shape(853, 481, 120, 8)
    assert len(frames) == 6
    for f in frames:
        assert f.image.shape == (481, 853, 3)
        assert f.proc.shape == (ph, pw, 3) and f.proc.dtype == np.uint8
        # the downsampled picture is the same picture: compare against an area resize
        ref = media.cv2.resize(f.image, (pw, ph), interpolation=media.cv2.INTER_AREA)
        assert np.abs(ref.astype(int) - f.proc).mean() < 4


def test_shape_rule_is_asked_per_frame(clip):
    """The source asks its shape rule (the engine's) for every frame: a change applies to the next ones."""
    shape = {"rule": FixedShape(48)}
    src = open_source(clip, proc_shape=lambda w, h: shape["rule"](w, h))
    try:
        first = src.read(timeout=5)
        assert first.proc.shape[:2] == (48, 80)
        shape["rule"] = lambda w, h: (w, h)  # full resolution
        rest = [f for f in iter(lambda: src.read(timeout=5), None)]
    finally:
        src.stop()
    # frames already queued keep the old size; the last ones have none
    assert rest[-1].proc is None and len(rest) == 29


def test_truncated_file_keeps_frames_and_counts_errors(truncated_clip):
    with open_source(truncated_clip) as src:
        frames = list(src)
    assert 5 < len(frames) < 30
    assert src.stats.decode_errors >= 30 - len(frames)
    assert [f.index for f in frames] == list(range(len(frames)))


def test_bitflipped_file_keeps_frames_and_counts_errors(bitflipped_clip):
    with open_source(bitflipped_clip) as src:
        frames = list(src)
    assert len(frames) >= 25
    assert src.stats.decode_errors > 0
    pts = [f.pts for f in frames]
    assert pts == sorted(pts)


def test_realtime_paces_at_pts_and_seek_pause(clip):
    src = FileSource(clip, realtime=True)
    try:
        t0 = time.perf_counter()
        for _ in range(10):
            f = src.read(timeout=2)
        elapsed = time.perf_counter() - t0
        assert f.index == 9 and elapsed >= 9 / 30 * 0.8
        src.seek(0.5)
        f = src.read(timeout=2)
        assert abs(f.extra["position"] - 0.5) < 0.04
        src.pause()
        drained = 0
        with pytest.raises(TimeoutError):
            for drained in range(1, 5):  # at most the two queued frames, then nothing
                src.read(timeout=0.2)
        assert drained <= 3
        src.resume()
        assert src.read(timeout=2) is not None
    finally:
        src.stop()


def test_loop_keeps_pts_increasing(clip):
    src = FileSource(clip, loop=True)
    try:
        frames = [src.read(timeout=5) for _ in range(75)]
    finally:
        src.stop()
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert [f.extra["position"] for f in frames[30:33]] == [f.extra["position"] for f in frames[:3]]


def test_stop_mid_file_joins_blocked_thread(clip):
    src = open_source(clip)
    src.start()
    assert src.read(timeout=5).index == 0
    time.sleep(0.1)  # the capture thread is now blocked on the full queue
    assert src.running
    src.stop()
    src.stop()  # idempotent
    assert not src.running and not _source_threads()


# -- images -------------------------------------------------------------------------------------
def test_image_folder_sorted_names_non_ascii(image_folder):
    (image_folder / "notes.txt").write_text("not an image")
    with open_source(image_folder, proc_shape=FixedShape(16)) as src:
        assert isinstance(src, ImageSource)
        frames = list(src)
    assert [f.name for f in frames] == ["img1.jpg", "img2.png", "img10.png", "nuit_été_🌙.png", "small.bmp"]
    assert [f.image.shape[:2] for f in frames] == [(30, 50), (48, 64), (48, 64), (48, 64), (21, 33)]
    assert all(f.pts is None and f.proc is not None and min(f.proc.shape[:2]) == 16 for f in frames)
    assert frames[1].extra["path"].endswith("img2.png")


def test_single_image_and_unreadable_images_counted(image_folder, tmp_path):
    (image_folder / "broken.png").write_bytes(b"\x89PNG not really")
    with open_source(image_folder) as src:
        frames = list(src)
    assert len(frames) == 5 and src.stats.decode_errors == 1
    with open_source(image_folder / "img2.png") as one:
        assert [f.name for f in one] == ["img2.png"]


def test_folder_of_unreadable_images_is_input_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="cannot read"):
        open_source(tmp_path)


# -- bad inputs ---------------------------------------------------------------------------------
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        open_source(tmp_path / "nope.mp4")
    assert "not found" in _one_line(e)


def test_random_bytes(random_file):
    before = random_file.read_bytes()
    with pytest.raises(InputError) as e:
        open_source(random_file)
    assert "random.mp4" in _one_line(e)
    assert random_file.read_bytes() == before


def test_empty_file_and_no_video_stream(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_source(tmp_path / "empty.mp4")
    audio = media.make_audio_only(tmp_path / "sound.m4a")
    with pytest.raises(InputError, match="no video stream"):
        open_source(audio)


def test_directory_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(InputError) as e:
        open_source(tmp_path)
    assert "no images" in _one_line(e)


def test_camera_index_absent():
    with pytest.raises(InputError) as e:
        open_source(97)
    msg = _one_line(e)
    assert msg.startswith("camera 97")
    if sys.platform.startswith("linux"):
        assert msg == "camera 97 not found (/dev/video97 does not exist)"
    with pytest.raises(InputError):
        open_source("camera:97")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_stream_is_input_error():
    port = _closed_port()
    t0 = time.monotonic()
    with pytest.raises(InputError) as e:
        open_source(f"rtsp://127.0.0.1:{port}/live", stream_options={"open_timeout": 2, "read_timeout": 2})
    assert "unreachable" in _one_line(e)
    assert time.monotonic() - t0 < 5
    with pytest.raises(InputError, match="unsupported URL scheme"):
        open_source("gopher://example/x")


def test_source_kind_dispatch(tmp_path, image_folder):
    assert source_kind(0) == "camera" and source_kind("camera:2") == "camera" and source_kind("1") == "camera"
    assert source_kind("rtsp://h/x") == "stream" and source_kind("https://h/x.m3u8") == "stream"
    assert source_kind("fake:64x48@10") == "fake"
    assert source_kind(image_folder) == "images" and source_kind("x.JPG") == "images"
    assert source_kind(tmp_path / "movie.mkv") == "file"


# -- live: fake camera, camera path, stream -----------------------------------------------------
def test_fake_live_drops_when_consumer_is_slow():
    src = FakeLiveSource(64, 48, fps=300)
    got = []
    with src:
        for _ in range(6):
            time.sleep(0.05)  # a slow engine
            newest_before = src.stats.captured - 1
            f = src.read(timeout=2)
            assert f.index >= newest_before  # always the newest frame, never a stale one
            got.append(f)
    stats = src.stats.snapshot()
    assert stats["dropped"] > 10
    assert all(b.index > a.index + 1 for a, b in zip(got, got[1:]))  # frames were skipped
    assert all(b.pts > a.pts for a, b in zip(got, got[1:]))
    assert stats["captured"] - stats["dropped"] - len(got) in (0, 1)  # at most one left in the slot


def test_fake_live_error_is_reraised_by_read():
    def gen(i):
        if i == 3:
            raise RuntimeError("sensor exploded")
        return np.zeros((8, 8, 3), np.uint8)

    src = FakeLiveSource(8, 8, fps=1000, generator=gen)
    with src, pytest.raises(RuntimeError, match="sensor exploded"):
        while True:
            src.read(timeout=2)


def test_fake_spec_and_proc():
    with open_source("fake:64x48@100", proc_shape=FixedShape(16)) as src:
        f = src.read(timeout=2)
    assert f.image.shape == (48, 64, 3) and f.proc.shape == (16, 24, 3)


def test_camera_code_path_with_file_device(clip):
    """CameraSource with an explicit device: the same open / decode / latest-frame path."""
    src = CameraSource(0, device=str(clip), input_format="mp4")
    with src:
        frames = []
        while (f := src.read(timeout=5)) is not None:
            frames.append(f)
            time.sleep(0.01)
    assert src.info.is_live and src.info.kind == "camera"
    # pts are rebased to start at 0 with the first captured frame; the reader may already have
    # missed that one (latest frame wins), so only non-negative, increasing pts can be asserted.
    assert frames and frames[0].pts >= 0
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert src.stats.captured == 30 and src.stats.dropped == 30 - len(frames)


class _Server:
    """A local HTTP server that serves one folder (FFmpeg's http:// protocol reads from it)."""

    def __init__(self, directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(ts_clip):
    server = _Server(ts_clip.parent)
    yield server
    server.close()


def test_http_stream_reads_frames(http_server, ts_clip):
    url = f"http://127.0.0.1:{http_server.port}/{ts_clip.name}"
    # (open_source reads a URL serving a finite file like a file: tests/test_http_sources.py)
    src = StreamSource(url, reconnect_on_eof=False, open_timeout=5, read_timeout=5)
    with src:
        frames = []
        while (f := src.read(timeout=5)) is not None:
            frames.append(f)
            time.sleep(0.005)
    assert src.info.kind == "stream" and (src.info.width, src.info.height) == (160, 96)
    assert frames and src.stats.captured == 30
    assert src.stats.captured == len(frames) + src.stats.dropped


def test_http_stream_reconnects_then_gives_up(http_server, ts_clip):
    url = f"http://127.0.0.1:{http_server.port}/{ts_clip.name}"
    src = StreamSource(url, reconnect_on_eof=True, max_retries=2, backoff=(0.05, 0.1),
                       open_timeout=2, read_timeout=2)
    with src:
        deadline = time.monotonic() + 10
        while src.stats.reconnects < 2 and time.monotonic() < deadline:
            src.read(timeout=5)
        assert src.stats.reconnects >= 2  # the server "dropped" (EOF) and we came back
        http_server.close()  # now the stream is gone for good
        with pytest.raises(InputError) as e:
            while True:
                src.read(timeout=10)
    msg = _one_line(e)
    assert "lost" in msg and "2 reconnect" in msg
    assert src.stats.captured > 60  # three connections' worth of frames


def test_no_thread_left_after_stop_for_every_kind(clip, image_folder):
    sources = [open_source(clip), open_source(image_folder), FakeLiveSource(32, 32, fps=200),
               CameraSource(0, device=str(clip), input_format="mp4")]
    for s in sources:
        s.start()
        s.read(timeout=5)
    assert len(_source_threads()) >= 2
    for s in sources:
        s.stop()
    assert not _source_threads()
    assert not [t for t in threading.enumerate() if t.name.startswith("lowlight") and t.is_alive()]


def test_image_exif_orientation_and_16_bit(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    img = pil.new("RGB", (40, 20), (200, 10, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone held upright
    img.save(tmp_path / "phone.jpg", exif=exif)
    media.cv2.imwrite(str(tmp_path / "deep.png"), np.full((6, 8, 3), 65535 // 2, np.uint16))
    with open_source(tmp_path) as src:
        frames = {f.name: f.image for f in src}
    assert frames["phone.jpg"].shape == (40, 20, 3)  # upright, as viewers show it
    assert frames["deep.png"].dtype == np.uint8 and abs(int(frames["deep.png"].mean()) - 127) <= 1
