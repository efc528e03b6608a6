"""Viewer tests: pytest-qt on the offscreen platform, a generated clip and a fake live source."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import itertools
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QRectF, Qt

from ui.imaging import fit_rect, numpy_to_qimage, qimage_to_numpy
from ui.meters import LatencyMeter, RateMeter
from ui.options import ViewerOptions
from ui.shortcuts import SHORTCUTS, shortcut_markdown
from ui.video_view import SIDE_BY_SIDE, SPLIT, VideoView


def _grab(widget) -> np.ndarray:
    """The widget as rendered, ``(H, W, 3)`` uint8 RGB."""
    return qimage_to_numpy(widget.grab().toImage())


def _region_mean(img: np.ndarray, rect: QRectF, inset: int = 4) -> float:
    x0, y0 = int(rect.left()) + inset, int(rect.top()) + inset
    x1, y1 = int(rect.right()) - inset, int(rect.bottom()) - inset
    return float(img[y0:y1, x0:x1].mean())


def _pair(h: int = 90, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    dark = np.full((h, w, 3), 20, np.uint8)
    bright = np.full((h, w, 3), 200, np.uint8)
    return dark, bright


# ---------------------------------------------------------------------------------- pure helpers
def test_qimage_shares_buffer_with_explicit_stride():
    base = np.zeros((10, 16, 3), np.uint8)
    base[..., 0] = np.arange(16, dtype=np.uint8)[None, :] * 10
    view = base[:, 2:14]                     # row stride 48 bytes, width 12: padded rows
    with pytest.raises(ValueError):
        numpy_to_qimage(view[:, ::2])       # not packed RGB
    img = numpy_to_qimage(view)
    assert img.bytesPerLine() == base.strides[0]
    assert img.pixelColor(0, 0).red() == 20 and img.pixelColor(11, 9).red() == 130
    base[0, 2, 0] = 77                       # no copy: the QImage sees the change
    assert img.pixelColor(0, 0).red() == 77
    back = qimage_to_numpy(img)
    assert back.shape == (10, 12, 3) and back[0, 0, 0] == 77


def test_fit_rect_keeps_aspect():
    r = fit_rect(1920, 1080, QRectF(0, 0, 400, 400))
    assert r.width() == pytest.approx(400) and r.height() == pytest.approx(225)
    assert r.top() == pytest.approx(87.5)


def test_meters():
    m = RateMeter(window=1.0)
    for i in range(31):
        m.tick(now=10.0 + i / 30)
    assert m.rate(now=11.0) == pytest.approx(30.0, rel=0.05)
    lat = LatencyMeter(5)
    for v in (0.01, 0.02, 0.03, 0.5, 0.04):
        lat.add(v)
    assert lat.median() == pytest.approx(0.03) and lat.last == 0.04


def test_options_from_a_run_config_and_keywords():
    from lowlight_rt.config import RunConfig

    config = RunConfig(source=2, fp16=False, out="rec.mp4", strength=0.5, crf=23, preset="fast", threads=1,
                       timeout=3.0, retries=1, max_frames=9)
    o = ViewerOptions.from_any(config, quit_after=3)
    assert o.run == config and o.quit_after == 3     # every run option reaches the viewer
    o = ViewerOptions.from_any(source_spec="clip.mp4", record="r.mp4", model="classical", mode="split")
    assert (o.run.source, o.run.out, o.run.model, o.mode) == ("clip.mp4", "r.mp4", "classical", "split")
    assert o.run.loop  # the viewer loops files


def test_options_refuse_unknown_keys():
    with pytest.raises(TypeError, match="strenght"):
        ViewerOptions.from_any(strenght=0.5)
    with pytest.raises(TypeError, match="something_else"):
        ViewerOptions.from_any({"quit_after": 3, "something_else": 1})


def test_viewer_doc_lists_every_shortcut():
    doc = Path(__file__).resolve().parents[1] / "docs" / "VIEWER.md"
    text = doc.read_text()
    assert shortcut_markdown() in text
    assert len({s.name for s in SHORTCUTS}) == len(SHORTCUTS)


# ---------------------------------------------------------------------------------- VideoView
def test_side_by_side_panes_show_input_and_enhanced(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(660, 240)
    view.show()
    dark, bright = _pair()
    latencies: list[float] = []
    view.frame_painted.connect(latencies.append)
    view.set_frame(dark, bright, capture_time=time.perf_counter())
    qtbot.waitUntil(lambda: len(latencies) == 1)
    assert 0 <= latencies[0] < 5
    img = _grab(view)
    rects = view.pane_rects()
    assert rects["input"].right() < rects["enhanced"].left()
    # aspect ratio kept: 16:9 in a 328x240 half -> 328 x 184.5
    assert rects["input"].width() / rects["input"].height() == pytest.approx(16 / 9, rel=0.01)
    assert _region_mean(img, rects["input"]) == pytest.approx(20, abs=3)
    assert _region_mean(img, rects["enhanced"]) == pytest.approx(200, abs=3)


def test_split_divider_follows_mouse_drag(qtbot):
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(400, 225)
    view.show()
    dark, bright = _pair()
    view.set_frame(dark, bright)
    view.set_mode(SPLIT)
    qtbot.waitExposed(view)
    r = view.pane_rects()["picture"]
    start = QPoint(int(view.divider_x()), int(r.center().y()))
    target_x = int(r.left() + 0.25 * r.width())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for x in range(start.x(), target_x - 1, -20):   # drag in steps, like a hand would
        qtbot.mouseMove(view, QPoint(x, start.y()))
    qtbot.mouseMove(view, QPoint(target_x, start.y()))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(target_x, start.y()))
    assert view.split == pytest.approx(0.25, abs=0.01)
    assert view.divider_x() == pytest.approx(target_x, abs=1.5)
    img = _grab(view)
    y = int(r.center().y()) + 30
    left = img[y, int(r.left()) + 3:target_x - 4].mean()
    right = img[y, target_x + 4:int(r.right()) - 3].mean()
    assert left == pytest.approx(20, abs=3)       # original left of the divider
    assert right == pytest.approx(200, abs=3)     # enhanced right of it
    view.toggle_mode()
    assert view.mode == SIDE_BY_SIDE


# ---------------------------------------------------------------------------------- the window
# Everything below drives the real MainWindow -> ViewerSession -> lowlight_rt Pipeline.
import cv2  # noqa: E402

from lowlight_rt.errors import EXIT_INPUT  # noqa: E402

W, H = 160, 96


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.media import make_clip

    return make_clip(tmp_path_factory.mktemp("ui") / "dark.mp4", width=W, height=H, frames=60, fps=30,
                     audio=True, dark=True)


def fake_camera(fail_at: int | None = None, fail_opens: int = 1, w: int = W, h: int = H, fps: float = 30.0):
    """A factory of FakeLiveSources; the first ``fail_opens`` sources die at frame ``fail_at``."""
    from lowlight_rt.sources.fake import FakeLiveSource, moving_pattern

    state = {"opens": 0}

    def factory(proc_shape=None):
        state["opens"] += 1
        gen = moving_pattern(w, h)
        if fail_at is not None and state["opens"] <= fail_opens:
            inner = gen

            def gen(i: int) -> np.ndarray:
                if i >= fail_at:
                    raise OSError("camera unplugged")
                return inner(i)

        return FakeLiveSource(w, h, fps, generator=gen, proc_shape=proc_shape)

    factory.description = "fake camera"
    factory.state = state
    return factory


@pytest.fixture
def make_window(qtbot, tmp_path):
    from ui.app import MainWindow

    windows = []

    def make(spec, **kw):
        kw.setdefault("model", "classical")
        kw.setdefault("output_dir", str(tmp_path))
        kw.setdefault("retry_delay", 0.2)
        kw.setdefault("size", (700, 360))
        win = MainWindow(ViewerOptions.from_any(source=spec, **kw))
        qtbot.addWidget(win)
        win.show()
        win.start()
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.close()
        assert win.session.pipeline is None


def _wait_frames(qtbot, win, n: int, timeout: int = 15000) -> None:
    target = win.shown + n
    qtbot.waitUntil(lambda: win.shown >= target, timeout=timeout)


def _pane_vs_array(img: np.ndarray, rect: QRectF, arr: np.ndarray) -> float:
    """Mean abs difference between a pane on screen and the array it should show."""
    x0, y0 = int(np.ceil(rect.left())) + 1, int(np.ceil(rect.top())) + 1
    x1, y1 = int(rect.right()) - 1, int(rect.bottom()) - 1
    shown = img[y0:y1, x0:x1].astype(np.float32)
    ref = cv2.resize(arr, (int(rect.width()), int(rect.height())), interpolation=cv2.INTER_AREA)
    ref = ref[1:1 + shown.shape[0], 1:1 + shown.shape[1]].astype(np.float32)
    return float(np.abs(shown - ref).mean())


def test_window_plays_clip_side_by_side(qtbot, make_window, clip):
    win = make_window(str(clip))
    _wait_frames(qtbot, win, 5)
    inp, enh = win.view.current_images()
    img = _grab(win.view)
    rects = win.view.pane_rects()
    assert inp.shape == enh.shape == (H, W, 3)
    # each pane shows its own picture...
    assert _pane_vs_array(img, rects["input"], inp) < 6
    assert _pane_vs_array(img, rects["enhanced"], enh) < 6
    # ...and the enhanced pane is clearly brighter than the input pane
    assert _region_mean(img, rects["enhanced"]) > _region_mean(img, rects["input"]) + 30
    assert win.session.live is False
    qtbot.waitUntil(win.seek_row.isVisible, timeout=3000)    # files get a seek bar
    lines = " ".join(win.overlay_lines())
    for word in ("capture", "inference", "display", "latency", "dropped", "classical", "proc", "denoise"):
        assert word in lines
    assert win.latency.median() is not None and win.latency.median() < 5


def test_strength_zero_shows_input(qtbot, make_window):
    win = make_window(fake_camera())
    _wait_frames(qtbot, win, 2)
    win.set_strength(0.0)
    assert win.session.engine.strength == 0.0
    seq = win._last_seq
    qtbot.waitUntil(lambda: win._last_seq is not None and win._last_seq >= seq + 3, timeout=10000)
    inp, enh = win.view.current_images()
    assert np.abs(inp.astype(int) - enh.astype(int)).max() <= 1
    img = _grab(win.view)
    r = win.view.pane_rects()
    assert abs(_region_mean(img, r["input"]) - _region_mean(img, r["enhanced"])) < 1.5


def test_split_mode_by_shortcut_and_drag(qtbot, make_window):
    win = make_window(fake_camera())
    _wait_frames(qtbot, win, 2)
    win.activateWindow()
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key.Key_V)
    assert win.view.mode == SPLIT
    r = win.view.pane_rects()["picture"]
    y = int(r.center().y())
    x_to = int(r.left() + 0.7 * r.width())
    qtbot.mousePress(win.view, Qt.MouseButton.LeftButton, pos=QPoint(int(win.view.divider_x()), y))
    qtbot.mouseMove(win.view, QPoint(x_to, y))
    qtbot.mouseRelease(win.view, Qt.MouseButton.LeftButton, pos=QPoint(x_to, y))
    assert win.view.split == pytest.approx(0.7, abs=0.01)
    _wait_frames(qtbot, win, 1)
    img = _grab(win.view)
    inp, enh = win.view.current_images()
    left = QRectF(r.left(), r.top(), x_to - r.left() - 3, r.height())
    right = QRectF(x_to + 3, r.top(), r.right() - x_to - 3, r.height())
    assert _region_mean(img, right) > _region_mean(img, left) + 30


def test_snapshot_and_record_write_valid_files(qtbot, make_window, clip, tmp_path):
    import av

    win = make_window(str(clip))
    _wait_frames(qtbot, win, 2)
    paths = win.snapshot()
    assert paths is not None
    snap_in = cv2.imread(str(paths[0]))[..., ::-1]
    snap_out = cv2.imread(str(paths[1]))[..., ::-1]
    assert snap_in.shape == snap_out.shape == (H, W, 3)
    assert snap_out.mean() > snap_in.mean() + 30

    for sbs in (False, True):
        rec = win.toggle_recording(side_by_side=sbs)
        assert rec is not None and win.session.recording
        _wait_frames(qtbot, win, 12)
        assert win.toggle_recording() == rec and not win.session.recording
        with av.open(str(rec)) as c:
            v = c.streams.video[0]
            assert (v.codec_context.width, v.codec_context.height) == ((2 * W if sbs else W), H)
            assert len(c.streams.audio) == 1            # the clip's audio is kept
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) >= 10
        if sbs:
            assert frames[-1][:, W:].mean() > frames[-1][:, :W].mean() + 30


def test_recordings_use_the_runs_x264_settings(qtbot, make_window, clip):
    """--crf / --preset reach the record button's MP4 (x264 writes its settings into the stream)."""
    win = make_window(str(clip), crf=31, preset="ultrafast")
    _wait_frames(qtbot, win, 2)
    rec = win.toggle_recording()
    _wait_frames(qtbot, win, 6)
    assert win.toggle_recording() == rec
    data = rec.read_bytes()
    assert b"crf=31.0" in data and b"cabac=0" in data  # ultrafast turns CABAC off


AUDIO_FRAME_S = 1024 / 48000  # one AAC frame of the generated clips


def _audio_timeline(path) -> list[tuple[float, float, bytes]]:
    """``(start s, end s, payload)`` of every packet of the first audio stream."""
    import av

    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        return [(float(p.pts * a.time_base), float((p.pts + p.duration) * a.time_base), bytes(p))
                for p in c.demux(a) if p.size]


def _video_times(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return [float(f.pts * v.time_base) for f in c.decode(v)]


def _check_recording_timeline(out, source, start: float, *, stopped: bool) -> tuple[list, list]:
    """Video from pts 0; audio within one audio frame of 0, each packet at its source time minus
    ``start`` (the source's A/V offset kept); a recording stopped mid-file ends its audio with its video."""
    video, audio, src = _video_times(out), _audio_timeline(out), _audio_timeline(source)
    assert video[0] == 0.0 and all(b > a for a, b in itertools.pairwise(video))
    assert audio and 0 <= audio[0][0] < AUDIO_FRAME_S
    k = next(i for i, p in enumerate(src) if p[2] == audio[0][2])
    assert src[k][0] >= start - 1e-6 > src[k][0] - AUDIO_FRAME_S
    for (t_out, _, data), (t_in, _, data_in) in zip(audio, src[k:]):
        assert data == data_in and abs(t_out - (t_in - start)) < 1e-3
    if stopped:
        video_end = video[-1] + 1 / 30
        assert video_end - AUDIO_FRAME_S < audio[-1][1] <= video_end + AUDIO_FRAME_S
    return video, audio


def test_recording_started_mid_file_starts_at_zero_in_sync(qtbot, make_window, clip):
    win = make_window(str(clip))
    _wait_frames(qtbot, win, 2)
    pos = lambda: win.session.position(win._current.frame) or 0.0
    qtbot.waitUntil(lambda: 0.4 <= pos() < 1.0, timeout=10000)   # mid-file, well before its end
    rec = win.toggle_recording()
    sink = win.session.recorder.sink
    _wait_frames(qtbot, win, 10)
    assert win.toggle_recording() == rec                  # stopped via Pipeline.remove_sink
    start = sink.start_time
    assert start is not None and 0.3 <= start < 1.5
    video, _ = _check_recording_timeline(rec, clip, start, stopped=True)
    assert len(video) >= 8


def test_recording_in_a_later_loop_uses_the_files_timeline(clip, tmp_path):
    from lowlight_rt.sources import open_source
    from ui.recording import ViewerRecording

    out = tmp_path / "loop2.mp4"
    with open_source(clip, loop=True) as src:                # 60 frames (2 s), then again
        rec = ViewerRecording(out, src.info, live=False)
        first_pts = None
        for f in src:
            if f.index >= 60 + 20:
                first_pts = f.pts if first_pts is None else first_pts
                rec.write(f, f.image)
            if f.index == 60 + 29:
                break
        rec.close()
    assert first_pts * src.info.time_base >= 2                 # the source's own pts run on across loops
    assert rec.start_time == pytest.approx(20 / 30, abs=1e-6)  # the file's time of the first frame
    video, _ = _check_recording_timeline(out, clip, rec.start_time, stopped=True)
    assert video == pytest.approx([i / 30 for i in range(10)], abs=1e-4)


def test_live_recording_is_rebased_to_zero(tmp_path):
    from lowlight_rt.sources.fake import FakeLiveSource
    from ui.recording import ViewerRecording

    out = tmp_path / "live.mp4"
    with FakeLiveSource(W, H, 30.0) as src:
        rec = ViewerRecording(out, src.info, live=True)
        src.start()
        frames = [src.read(timeout=5) for _ in range(8)]
    for f in frames[3:]:
        rec.write(f, f.image)
    rec.close()
    t = [float(f.pts * f.time_base) for f in frames[3:]]
    assert t[0] > 0 and rec.start_time == pytest.approx(t[0])
    video = _video_times(out)
    assert video == pytest.approx([x - t[0] for x in t], abs=1e-5)  # from 0, the clock's spacing kept


def test_file_pause_and_seek(qtbot, make_window, clip):
    win = make_window(str(clip))
    _wait_frames(qtbot, win, 3)
    win.toggle_pause()
    qtbot.wait(150)
    shown = win.shown
    qtbot.wait(400)
    assert win.shown <= shown + 1
    win.toggle_pause()
    _wait_frames(qtbot, win, 3)
    qtbot.waitUntil(win.seek_row.isVisible, timeout=3000)
    seeks: list[float] = []
    real_seek = win.session.seek
    win.session.seek = lambda t: (seeks.append(t), real_seek(t))
    pos = lambda: (win.session.position(win._current.frame) or 0) % 2.0  # noqa: E731
    qtbot.waitUntil(lambda: pos() < 0.6, timeout=5000)
    slider = win.seek_slider                     # click at 75 % of the seek bar: 1.5 s of 2 s
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton,
                     pos=QPoint(int(slider.width() * 0.75), slider.height() // 2))
    assert len(seeks) == 1 and seeks[0] == pytest.approx(1.5, abs=0.1)
    qtbot.waitUntil(lambda: 1.35 <= pos() <= 1.9, timeout=5000)


def test_live_source_dies_shows_error_and_reconnects(qtbot, make_window):
    cam = fake_camera(fail_at=5)
    win = make_window(cam)
    qtbot.waitUntil(lambda: "camera unplugged" in win.banner.text(), timeout=10000)
    assert "reconnecting" in win.banner.text()
    # the window is alive and the source comes back after the backoff
    qtbot.waitUntil(lambda: cam.state["opens"] >= 2 and win.session.pipeline is not None, timeout=10000)
    _wait_frames(qtbot, win, 5)
    assert win.banner.text() == ""
    assert win.isVisible()


def test_unreadable_file_and_bad_checkpoint_show_errors(qtbot, make_window, clip, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    win = make_window(str(junk))
    qtbot.waitUntil(lambda: win.banner.kind == "error" and "junk.mp4" in win.banner.text(), timeout=10000)
    assert win.session.pipeline is None and win.isVisible()
    win.open_source(str(clip))                  # the app survived: open something that works
    _wait_frames(qtbot, win, 3)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    win.session.set_model(str(bad))
    qtbot.waitUntil(lambda: "Cannot load model" in win.banner.text(), timeout=10000)
    _wait_frames(qtbot, win, 3)                 # still playing with the old model
    assert win.session.model_name == "classical"


def test_drop_a_file_opens_it(qtbot, make_window, clip):
    from PyQt6.QtCore import QMimeData, QPointF, QUrl
    from PyQt6.QtGui import QDropEvent

    win = make_window(None)
    assert win.session.pipeline is None
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(clip))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    win.dropEvent(event)
    _wait_frames(qtbot, win, 3)
    assert win.session.spec == str(clip)


def test_exception_hook_reports_in_the_banner(qtbot, make_window):
    from ui.app import install_excepthook

    previous = install_excepthook()
    try:
        win = make_window(fake_camera())
        _wait_frames(qtbot, win, 2)
        try:
            raise ZeroDivisionError("boom in a slot")
        except ZeroDivisionError:
            sys.excepthook(*sys.exc_info())
        assert "boom in a slot" in win.banner.text()
        _wait_frames(qtbot, win, 3)             # still running
    finally:
        sys.excepthook = previous


def test_exception_in_slot_does_not_abort(tmp_path):
    """PyQt6 aborts the process on an exception in a slot unless an excepthook is installed."""
    import subprocess

    shot = tmp_path / "after_exception.png"
    code = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PyQt6.QtCore import QTimer\n"
        "from PyQt6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "def boom():\n"
        "    raise ZeroDivisionError('boom in a slot')\n"
        "QTimer.singleShot(200, boom)\n"
        "from ui.app import run_viewer\n"
        f"sys.exit(run_viewer(source_spec='fake:{W}x{H}@30', model='classical', quit_after=12,\n"
        f"                    screenshot={str(shot)!r}))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "boom in a slot" in proc.stderr     # logged by the hook...
    assert shot.exists()                        # ...and the viewer went on to quit normally


def test_run_viewer_quit_after_and_screenshot(qapp, clip, tmp_path):
    from ui.app import run_viewer

    shot = tmp_path / "shot.png"
    code = run_viewer(source_spec=str(clip), model="classical", quit_after=4, screenshot=str(shot),
                      size=(640, 320))
    assert code == 0
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] >= 600 and img.std() > 5
    code = run_viewer(source_spec=str(tmp_path / "missing.mp4"), model="classical", quit_after=4)
    assert code == EXIT_INPUT
    assert not [t for t in threading.enumerate() if t.name.startswith("lowlight")]


def test_max_frames_ends_a_live_source_without_reconnecting(qtbot, make_window):
    """--max-frames reaches the viewer: the run stops after N frames, as an end, not a failure."""
    cam = fake_camera()
    win = make_window(cam, max_frames=5)
    qtbot.waitUntil(lambda: win.session.ended, timeout=15000)
    assert "End of" in win.banner.text() and cam.state["opens"] == 1
    assert win.session.pipeline.stats.frames_out == 5


def test_controls_processing_size_model_and_help(qtbot, make_window):
    win = make_window(fake_camera(w=320, h=192))
    _wait_frames(qtbot, win, 2)
    engine = win.session.engine
    default = engine.proc_size
    assert win.proc_combo.currentData() == default
    win.step_proc_size(-1)                       # one size smaller than the model's default
    smaller = win.proc_combo.currentData()
    assert 0 < smaller < default and engine.proc_size == smaller
    _wait_frames(qtbot, win, 3)
    # short side 192 -> 180 is a scale of 0.9375: 300 x 180, each rounded to a multiple of 8
    assert smaller == 180 and win._proc_text() == "304x176"
    qtbot.waitUntil(lambda: win._current.frame.proc is not None
                    and win._current.frame.proc.shape[:2] == (176, 304), timeout=5000)  # what the network gets
    win.session.set_model("classical")          # reload through the picker's path
    qtbot.waitUntil(lambda: "Model: classical" in win.banner.text() or win.banner.text() == "", timeout=5000)
    _wait_frames(qtbot, win, 2)
    assert win.model_combo.itemText(win.model_combo.count() - 1).startswith("Open checkpoint")
    win.toggle_fullscreen()
    assert win.isFullScreen() and not win.toolbar.isVisible()
    win.toggle_fullscreen()
    assert not win.isFullScreen() and win.toolbar.isVisible()
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key.Key_F1)
    assert win.help.isVisible()
    qtbot.keyClick(win.help, Qt.Key.Key_Escape)
    assert not win.help.isVisible()


def test_close_while_opening_leaves_no_thread(qtbot, make_window):
    win = make_window(fake_camera())
    win.close()                                  # the open is still in flight
    qtbot.wait(300)
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith("lowlight")], names


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_device_switch_to_cuda(qtbot, make_window):
    win = make_window(fake_camera())
    _wait_frames(qtbot, win, 2)
    win.toggle_device()
    qtbot.waitUntil(lambda: str(win.session.engine.device_name).startswith("cuda"), timeout=20000)
    _wait_frames(qtbot, win, 5)


# ---------------------------------------------------------------------------------- keyboard shortcuts
# Each key of docs/VIEWER.md pressed on the window, checked by what it changes in the session / engine
# (not by the banner): a swapped or unconnected shortcut fails here.
def _press(qtbot, win, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    win.activateWindow()
    win.view.setFocus()
    qtbot.keyClick(win.view, key, modifier)


@pytest.fixture
def realtime_checkpoint(tmp_path) -> Path:
    """A second model for the picker: a small ``realtime`` student (untrained weights)."""
    import torch

    from lowlight_rt.models import create_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "student.pt", create_model("realtime", width=8, depth=1), {"label": "test"})


def test_m_cycles_back_to_a_checkpoint_given_on_the_command_line(qtbot, make_window, realtime_checkpoint):
    """A ``--model file.pt`` stays in the picker after M switched away: M comes back to it."""
    win = make_window(fake_camera(), model=str(realtime_checkpoint))
    _wait_frames(qtbot, win, 1)
    engine = win.session.engine
    assert engine.model.config.get("width") == 8                       # the test's own checkpoint
    seen = []
    for _ in range(win.model_combo.count() - 1):                        # every entry but "Open checkpoint..."
        before = engine.model
        _press(qtbot, win, Qt.Key.Key_M)
        qtbot.waitUntil(lambda: engine.model is not before, timeout=10000)
        seen.append(win.model_combo.currentData())
    assert seen[-1] == str(realtime_checkpoint) and engine.model.config.get("width") == 8
    assert len(set(seen)) == len(seen)                                  # each model once per cycle


def test_keys_strength_model_device_overlay_url_and_quit(qtbot, make_window, realtime_checkpoint, monkeypatch):
    import ui.app

    win = make_window(fake_camera(), model=str(realtime_checkpoint), strength=0.5)
    _wait_frames(qtbot, win, 2)
    engine = win.session.engine
    assert engine.model.arch_name == "realtime" and engine.strength == pytest.approx(0.5)

    # + / Up raise the strength by 0.1, - / Down lower it, in the engine itself
    for key, expected in ((Qt.Key.Key_Plus, 0.6), (Qt.Key.Key_Up, 0.7), (Qt.Key.Key_Minus, 0.6),
                          (Qt.Key.Key_Down, 0.5), (Qt.Key.Key_Down, 0.4)):
        _press(qtbot, win, key)
        assert engine.strength == pytest.approx(expected), f"{key.name}: strength {engine.strength}"

    # N: temporal denoising off, then on again, in the engine, the toolbar's check state and the overlay
    assert engine.denoise and win.actions_by_name["denoise"].isChecked()
    assert "denoise off" not in " ".join(win.overlay_lines())
    _press(qtbot, win, Qt.Key.Key_N)
    assert not engine.denoise and not win.session.config.denoise
    assert not win.actions_by_name["denoise"].isChecked()
    assert "denoise off" in " ".join(win.overlay_lines())
    _press(qtbot, win, Qt.Key.Key_N)
    assert engine.denoise

    # M: the next model in the picker replaces the student in the running engine (the picker lists
    # the default first: classical, or the shipped realtime student)
    from lowlight_rt.models import load_model

    realtime_model = engine.model
    _press(qtbot, win, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: engine.model is not realtime_model, timeout=10000)
    chosen = win.model_combo.currentData()
    assert chosen != str(realtime_checkpoint) and chosen in ("classical", "realtime")
    assert engine.model.arch_name == load_model(chosen)[0].arch_name and win.session.engine is engine
    if chosen == "realtime":  # the shipped student: the engine runs its config, not the test's
        assert engine.model.config == load_model("realtime")[0].config
    _wait_frames(qtbot, win, 2)                       # and frames keep coming with it

    # D: switch device (here CUDA "exists"; the switch request is what the key must produce)
    requested: list[str] = []
    monkeypatch.setattr(ui.app, "_cuda_available", lambda: True)
    monkeypatch.setattr(win.session, "set_device", requested.append)
    _press(qtbot, win, Qt.Key.Key_D)
    assert requested == ["cuda"]

    # I: statistics overlay off, then on
    assert win.view.overlay_visible
    _press(qtbot, win, Qt.Key.Key_I)
    assert not win.view.overlay_visible
    _press(qtbot, win, Qt.Key.Key_I)
    assert win.view.overlay_visible

    # Ctrl+U: the URL typed in the dialog is opened (a file dialog, the wrong one, would be cancelled)
    opened: list = []
    monkeypatch.setattr(ui.app.QInputDialog, "getText", staticmethod(lambda *a, **k: ("  rtsp://cam.test/live ", True)))
    monkeypatch.setattr(ui.app.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("", "")))
    monkeypatch.setattr(win.session, "open", opened.append)
    _press(qtbot, win, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    assert opened == ["rtsp://cam.test/live"]
    monkeypatch.undo()                                # the real session.open / set_device again

    # Q: quit (the window closes and its pipeline stops)
    _press(qtbot, win, Qt.Key.Key_Q)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=5000)
    assert win._quitting and win.session.pipeline is None


def test_keys_seek_and_open_file(qtbot, make_window, clip, tmp_path, monkeypatch):
    import ui.app

    win = make_window(str(clip))
    _wait_frames(qtbot, win, 3)
    qtbot.waitUntil(lambda: win.session.can_seek, timeout=5000)
    seeks: list[float] = []
    real_seek = win.session.seek
    monkeypatch.setattr(win.session, "seek", lambda t: (seeks.append(t), real_seek(t)))
    for key, delta in ((Qt.Key.Key_Right, +5.0), (Qt.Key.Key_Left, -5.0)):
        pos = win.session.position(win._current.frame) % 2.0      # the clip is 2 s long
        _press(qtbot, win, key)
        assert seeks and seeks[-1] == pytest.approx(pos + delta, abs=0.1), f"{key.name}: seek({seeks[-1]}) from {pos}"
    assert len(seeks) == 2
    qtbot.waitUntil(lambda: win.session.position(win._current.frame) % 2.0 < 0.5, timeout=5000)  # Left: to 0

    # Ctrl+O: the file chosen in the dialog plays (a URL dialog, the wrong one, would be cancelled)
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes())
    monkeypatch.setattr(ui.app.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(other), "")))
    monkeypatch.setattr(ui.app.QInputDialog, "getText", staticmethod(lambda *a, **k: ("", False)))
    _press(qtbot, win, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert win.session.spec == str(other)
    _wait_frames(qtbot, win, 3)


def test_recording_a_live_source_that_the_writer_cannot_keep_up_with_says_so(qtbot, make_window, monkeypatch):
    """Like the headless job: "encoding overloaded" once, in the status bar, when writing a frame takes
    longer than the camera's frame interval and frames are dropped."""
    import time as _time

    from ui.recording import ViewerRecording

    original = ViewerRecording.write

    def slow_write(self, frame, enhanced):
        _time.sleep(0.08)                             # a 30 FPS camera gives 33 ms per frame
        return original(self, frame, enhanced)

    monkeypatch.setattr(ViewerRecording, "write", slow_write)
    win = make_window(fake_camera(fps=30.0))
    _wait_frames(qtbot, win, 2)
    assert win.overload_message is None
    win.toggle_recording()
    qtbot.waitUntil(lambda: win.overload_message is not None, timeout=15000)
    assert win.overload_message.startswith("encoding overloaded")
    assert "encoding overloaded" in win.statusBar().currentMessage()
    win.toggle_recording()
