"""``lowlight-rt bench``: measured on a fake clock with known stage costs, so every FPS, ratio and
target is checked against values known in advance (not recomputed from the bench's own JSON)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from lowlight_rt import bench
from lowlight_rt.cli import main
from lowlight_rt.inference import Engine
from lowlight_rt.frames import YuvPlanes
from lowlight_rt.sinks import VideoFileSink
from tests import media

INFER_S, DARK_WRITE_S, BRIGHT_WRITE_S = 0.010, 0.005, 0.008
#: CPU seconds per wall second of encoding (x264 on two threads); inference runs on one
WRITE_CPU_PER_S = 2.0


class FakeClock:
    """A thread-safe stand-in for the ``time`` module: time passes only when :meth:`advance` is called.

    ``perf_counter`` is the wall clock, ``process_time`` the process's CPU time (a different origin
    and, where a stage runs on several threads, a different rate: the bench must use the right one).
    """

    def __init__(self) -> None:
        self._now = 1000.0
        self._cpu = 3.0
        self._lock = threading.Lock()

    def perf_counter(self) -> float:
        with self._lock:
            return self._now

    def process_time(self) -> float:
        with self._lock:
            return self._cpu

    def advance(self, seconds: float, cpu_seconds: float | None = None) -> None:
        """``seconds`` of wall time pass, in which the process uses ``cpu_seconds`` of CPU (default: as much)."""
        with self._lock:
            self._now += seconds
            self._cpu += seconds if cpu_seconds is None else cpu_seconds


@pytest.fixture
def fake_costs(monkeypatch):
    """Inference costs 10 ms a frame (10 ms of CPU); encoding 5 ms a dark frame, 8 ms a bright one
    (as with x264), on two threads (twice that in CPU time)."""
    clock = FakeClock()
    monkeypatch.setattr(bench, "time", clock)
    original_submit, original_write = Engine.submit, VideoFileSink.write
    written = {"means": [], "yuv": 0}

    def submit(self, frames, yuv=False):
        clock.advance(INFER_S * len(frames))
        return original_submit(self, frames, yuv=yuv)

    def write(self, frame, enhanced):
        if isinstance(enhanced, YuvPlanes):
            written["yuv"] += 1
            mean = float(enhanced.y.mean())
        else:
            mean = float(enhanced.mean())
        written["means"].append(mean)
        cost = BRIGHT_WRITE_S if mean > 50 else DARK_WRITE_S
        clock.advance(cost, WRITE_CPU_PER_S * cost)
        return original_write(self, frame, enhanced)

    monkeypatch.setattr(Engine, "submit", submit)
    monkeypatch.setattr(VideoFileSink, "write", write)

    def cheap_frames(width, height, count=4):
        return tuple(media.make_frame(i, width, height, rng=np.random.default_rng(i)) for i in range(count))

    def cheap_clip(path, width=1280, height=720, fps=30, seconds=4.0):
        return media.make_clip(path, width=width, height=height, fps=fps, frames=max(1, round(fps * seconds)))

    monkeypatch.setattr(bench, "_test_frames", cheap_frames)
    monkeypatch.setattr(bench, "make_clip", cheap_clip)
    return written


def run_bench_cli(capsys, *args):
    code = main(["bench", "--json", "--device", "cpu", "--seconds", "0.05", "--repeats", "2", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bench_json_curve_floor_and_fidelity(capsys, fake_costs, tmp_path):
    real = media.make_clip(tmp_path / "night.mp4", width=320, height=180, frames=8)
    code, out, err = run_bench_cli(capsys, "--resolutions", "480p,720p", "--clip-scale", "0.125",
                                   "--real-clip", real)
    assert code == 0, err
    result = json.loads(out)  # stdout is one JSON object; progress and logs went to stderr
    from lowlight_rt.models.catalog import default_model_name

    assert result["model"] == default_model_name() and result["settings"]["yuv_path"] is True
    assert result["settings"]["x264_params"] == "subme=1:partitions=i8x8,i4x4"   # the default preset's parameters, reported
    assert {(r["label"], r["domain"]) for r in result["model_only"]} == {
        (label, d) for label in ("480p", "720p") for d in ("rgb", "yuv420p")}
    for r in result["model_only"]:  # inference only, warm-up excluded: 100 FPS, 10 ms per frame
        assert r["fps"]["median"] == pytest.approx(1 / INFER_S, rel=1e-6) and len(r["fps"]["runs"]) == 2
        assert r["fps"]["spread_pct"] == pytest.approx(0.0, abs=1e-6)
    cases = {c["label"]: c for c in result["file"]}
    assert set(cases) == {"480p", "720p", "real 720p"}
    assert cases["480p"]["frames"] == round(30 * 3.0 * 0.125) and cases["real 720p"]["frames"] == 8
    assert fake_costs["yuv"] > 0 and max(fake_costs["means"]) > 50  # the YUV path reached the encoder
    for c in cases.values():
        # end to end: inference + encoding the bright enhanced frame: 18 ms a frame
        assert c["end_to_end_fps"]["median"] == pytest.approx(1 / (INFER_S + BRIGHT_WRITE_S), rel=1e-6)
        assert len(c["end_to_end_fps"]["runs"]) == 2
        # the floor decodes the input and encodes the run's own (bright) frames: 8 ms a frame
        assert c["codec_floor_fps"]["median"] == pytest.approx(1 / BRIGHT_WRITE_S, rel=1e-6)
        assert c["ratio_to_codec_floor"]["median"] == pytest.approx(8 / 18, rel=1e-6)
        # CPU time (process_time, not the wall clock): 10 ms inference + 2 x 8 ms encoding; the floor 2 x 8 ms
        assert c["cpu_ms_per_frame"]["median"] == pytest.approx(
            1e3 * (INFER_S + WRITE_CPU_PER_S * BRIGHT_WRITE_S), rel=1e-6)
        assert c["codec_floor_cpu_ms_per_frame"]["median"] == pytest.approx(
            1e3 * WRITE_CPU_PER_S * BRIGHT_WRITE_S, rel=1e-6)
        assert c["psnr_db"] > 30 and c["psnr_y_db"] > 30 and c["frames_compared"] == c["frames"]
        assert c["file_bytes"] > 0
    assert result["yuv_path_fidelity"]["frames"] == 8 and result["yuv_path_fidelity"]["psnr_db"] > 30
    t = result["targets"]  # 55.6 FPS meets 30; a ratio of 0.44 misses 0.9
    assert t["cpu_720p_file_fps>=30"] is True and t["cpu_real_720p_file_fps>=30"] is True
    assert t["cpu_720p_ratio_to_codec_floor>=0.9"] is False
    assert "720p_written_psnr>=38dB" in t
    assert "file      720p" in err and "codec floor" in err and "CPU 26 vs 16 ms/frame" in err
    assert " 1/" in err  # progress steps on stderr
    stages = result["stages"]   # where a 720p frame of the YUV path goes, on the CPU
    assert stages["resolution"] == "1280x720" and stages["proc_shape"] == "344x192"
    for k in ("input", "network", "operator"):
        assert stages[k]["cpu_ms"] >= 0 and stages[k]["wall_ms"] >= 0
    assert "stages      cpu 720p yuv" in err


def test_bench_skips_a_missing_real_clip_and_can_take_the_rgb_path(capsys, fake_costs, tmp_path):
    code, out, err = run_bench_cli(capsys, "--resolutions", "480p", "--clip-scale", "0.1",
                                   "--real-clip", tmp_path / "absent.mp4", "--rgb-path")
    assert code == 0, err
    result = json.loads(out)
    assert "absent.mp4" in result["real_clip"]["skipped"]
    assert [c["label"] for c in result["file"]] == ["480p"]
    assert fake_costs["yuv"] == 0 and result["settings"]["yuv_path"] is False
    assert "yuv_path_fidelity" not in result


def test_summarize():
    s = bench.summarize([10.0, 12.0, 11.0])
    assert (s["median"], s["min"], s["max"]) == (11.0, 10.0, 12.0)
    assert s["spread_pct"] == pytest.approx(100 * 2 / 11)


def test_4k_test_frames_tile_four_different_half_size_frames(monkeypatch):
    original = bench._test_frames.__wrapped__  # the uncached function
    calls = []

    def half(width, height, count=4):
        calls.append((width, height, count))
        return tuple(np.full((height, width, 3), 10 * k, np.uint8) for k in range(count))

    monkeypatch.setattr(bench, "_test_frames", half)
    frames = original(3840, 2160, 2)
    assert calls == [(1920, 1080, 4)] and len(frames) == 2
    f = frames[1]
    assert f.shape == (2160, 3840, 3) and f.flags.c_contiguous
    assert [f[0, 0, 0], f[0, -1, 0], f[-1, 0, 0], f[-1, -1, 0]] == [10, 20, 30, 0]


def test_stage_breakdown_times_the_three_steps_of_a_yuv_frame():
    from lowlight_rt.models import create_model

    engine = Engine(create_model("realtime", width=4, depth=1), device="cpu", threads=1, proc_size=96)
    st = bench.bench_stages(engine, 320, 240, rounds=3, count=2)
    assert st["proc_shape"] == "128x96" and st["rounds"] == 3
    stages = ("input", "network", "operator", "denoise")
    assert all(st[k]["wall_ms"] > 0 for k in stages)
    assert st["total_cpu_ms"] == pytest.approx(sum(st[k]["cpu_ms"] for k in stages))
    engine.denoise = False
    assert "denoise" not in bench.bench_stages(engine, 320, 240, rounds=1, count=2)
    not_affine = Engine(create_model("unet"), device="cpu", threads=1)
    assert "skipped" in bench.bench_stages(not_affine, 320, 240, rounds=1)


def test_codec_floor_encodes_with_the_given_x264_options(tmp_path):
    """``tools/x264_ab.py`` compares settings through ``bench_codec_floor(codecs=...)``: the options reach x264."""
    from lowlight_rt.codecs import SOFTWARE_ENCODER, CodecChoice
    from lowlight_rt.models import create_model

    clip = media.make_clip(tmp_path / "in.mp4", width=64, height=48, frames=4)
    engine = Engine(create_model("classical"), device="cpu", threads=1)
    options = bench._options(crf=20, preset="veryfast", tune=None, batch=1, yuv=True)
    enhanced = bench.bench_file(clip, tmp_path / "e.mp4", engine, options)["enhanced"]
    out = tmp_path / "floor.mp4"
    floor = bench.bench_codec_floor(clip, out, engine, options, enhanced,
                                    codecs=CodecChoice(None, SOFTWARE_ENCODER, {"crf": "30", "preset": "ultrafast",
                                                                                "x264-params": "subme=3"}))
    assert floor["frames"] == 4
    data = out.read_bytes()
    settings = data[data.index(b"x264 - core"):].split(b"\0", 1)[0].decode()
    assert " subme=3 " in settings and " crf=30.0 " in settings, settings
    engine.close()


def test_experiment_clip_names_the_generated_or_real_clip_or_takes_a_path(tmp_path, monkeypatch):
    """The A/B tools' ``--clip``: ``generated`` and ``real`` are made in the work folder, anything else is a path."""
    made = []
    monkeypatch.setattr(bench, "make_clip", lambda path, seconds: made.append(("generated", path, seconds)) or path)
    monkeypatch.setattr(bench, "scale_clip", lambda src, dst, seconds: made.append(("real", src, dst, seconds)) or dst)
    assert bench.experiment_clip("generated", tmp_path, 2.0) == tmp_path / "clip.mp4"
    assert bench.experiment_clip("real", tmp_path, 3.0) == tmp_path / "real.mp4"
    assert bench.experiment_clip("night.mp4", tmp_path, 1.0) == Path("night.mp4")
    assert made == [("generated", tmp_path / "clip.mp4", 2.0), ("real", bench.REAL_CLIP, tmp_path / "real.mp4", 3.0)]


def test_fidelity_measures_compare_in_the_input_matrix(tmp_path):
    """An untagged (BT.601) clip: the YUV path writes BT.601 planes; the bench's PSNRs must compare them
    with the RGB path / the written file in that matrix (comparing against BT.709 planes gives ~30 dB)."""
    from lowlight_rt.models import create_model

    clip = media.make_clip(tmp_path / "c.mp4", width=320, height=192, frames=6)
    engine = Engine(create_model("classical"), device="cpu", threads=1)
    fidelity = bench.yuv_fidelity(clip, engine, frames=4)
    assert fidelity["frames"] == 4 and fidelity["psnr_db"] > 40.0
    run = bench.bench_file(clip, tmp_path / "o.mp4", engine, bench._options(crf=20, preset="veryfast", tune=None,
                                                                             batch=1, yuv=True))
    assert {getattr(p, "matrix", None) for p in run["enhanced"]} == {"bt601"}
    assert bench.written_psnr(tmp_path / "o.mp4", run["enhanced"])["psnr_db"] > 38.0
    rgb = [p.to_rgb() for p in run["enhanced"]]   # RGB references are converted to the file's matrix
    assert bench.written_psnr(tmp_path / "o.mp4", rgb)["psnr_db"] > 38.0
