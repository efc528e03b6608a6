"""``lowlight-rt bench``: speed of the model and of the file pipeline, against the codec floor.

Reports, in one run (progress on stderr, results as a table or ``--json``):

* model-only FPS (``Engine.enhance``: network at the processing size, full-resolution application)
  at 480p, 720p, 1080p and 4K, for each available device / precision; on the CPU both for RGB
  frames and for decoded 4:2:0 planes (the YUV path files take);
* file to file (decode -> enhance -> H.264 encode + audio copy, the CLI's own job code) on generated
  clips at the same resolutions and on a real night clip scaled to 720p (when
  ``../shared/data/video/ken2190_night_yard_1080p.mp4`` or ``--real-clip`` exists);
* for each clip the **codec floor**: decoding the input and encoding the run's own enhanced frames
  (kept in memory), same classes, threads and settings, no model; and the ratio file / floor;
* on the CPU, where one frame of the YUV path goes: the network's input, the network, the operator and
  the temporal denoiser (when on), interleaved frame by frame, median wall and CPU ms (``"stages"``, at 720p when it is measured);
* the fidelity of the written video: PSNR of the decoded output against the uncompressed enhanced
  frames the encoder got (4:2:0 planes, all samples), its size and bitrate; and PSNR of the YUV path
  against the RGB path (same frames, the encoder's input of each).

Every measurement is repeated (``--repeats``; fewer at 4K) and reported as median, min, max and
spread, because the development machine is shared and noisy: compare numbers from one run.

Targets (README, issue 10): 2-core CPU 720p file-to-file >= 30 FPS and >= 0.9x the codec floor on
the generated and the real clip, PSNR of the written video >= 38 dB; CUDA 1080p FP16 model-only
>= 500 FPS.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import __version__
from .codecs import x264_options
from .config import CPU_RUNTIMES, DEFAULT_CPU_RUNTIME, DEFAULT_DENOISE, X264_CRF, X264_PRESET, X264_TUNE, RunConfig
from .inference import Engine
from .errors import UsageError
from .frames import FALLBACK_MATRIX, MATRIX_AV_COLORSPACE, SWS_FROM_RGB, SWS_MATRIX, Frame, YuvPlanes
from .models.catalog import load_model

RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
#: per resolution: (seconds of generated clip, share of --repeats): fewer frames and runs at 4K
FILE_PLAN = {"480p": (3.0, 1.0), "720p": (4.0, 1.0), "1080p": (2.0, 0.67), "4K": (0.5, 0.34)}
REAL_CLIP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video" / "ken2190_night_yard_1080p.mp4"
CPU_TARGET_FPS = 30.0
CPU_TARGET_RATIO = 0.9
PSNR_TARGET_DB = 38.0
CUDA_TARGET_FPS_1080P = 500.0


# -- statistics and progress -------------------------------------------------------------------
def summarize(values: Sequence[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "spread_pct", "runs"}`` of repeated measurements
    (spread = (max - min) / median, in percent)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "spread_pct": 0.0, "runs": []}
    med = statistics.median(vals)
    return {"median": med, "min": min(vals), "max": max(vals),
            "spread_pct": 100.0 * (max(vals) - min(vals)) / med if med else 0.0, "runs": vals}


def _fmt(stats: dict[str, Any]) -> str:
    return f"{stats['median']:7.1f} (min {stats['min']:.1f}, max {stats['max']:.1f}, n={len(stats['runs'])})"


class Progress:
    """Step counter with elapsed time on stderr (a tqdm bar on a terminal, plain lines otherwise)."""

    def __init__(self, total: int, enabled: bool = True, stream=None) -> None:
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=self.stream, unit="step", leave=False, dynamic_ncols=True)

    def step(self, what: str) -> None:
        """Announce the step that starts now."""
        self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_description(what[:60])
            self._bar.update(1)
        else:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {self.done}/{self.total} {what}",
                  file=self.stream, flush=True)

    def write(self, line: str) -> None:
        """A result line (kept above the bar)."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- test material -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _test_frames(width: int, height: int, count: int = 4) -> tuple[np.ndarray, ...]:
    """Dark, noisy ``(H, W, 3)`` uint8 frames from the demo scene (realistic content, not flat noise).

    Cached: rendering the scene takes seconds at 1080p and every device / precision reuses it.
    Above 1080p (4K) each frame tiles four different half-size frames 2x2: native-resolution noise
    and detail for the same cost per pixel, without minutes of rendering.
    """
    if width > 1920 and width % 2 == 0 and height % 2 == 0:
        quarters = _test_frames(width // 2, height // 2, 4)
        return tuple(_tile(quarters, i) for i in range(count))
    from .demo import DEMO_PARAMS, NightScene
    from .synth import simulate_low_light

    scene = NightScene(width, height, 30, count / 30.0, 7)
    rng = np.random.default_rng(0)
    return tuple(simulate_low_light(scene.frame(i), DEMO_PARAMS, rng=rng) for i in range(count))


def _tile(quarters: Sequence[np.ndarray], i: int) -> np.ndarray:
    """Four ``(h, w, 3)`` frames, starting at ``i``, as one ``(2h, 2w, 3)`` frame."""
    q = [quarters[(i + k) % len(quarters)] for k in range(4)]
    return np.ascontiguousarray(np.concatenate([np.concatenate(q[:2], axis=1), np.concatenate(q[2:], axis=1)], axis=0))


def rgb_to_planes(image: np.ndarray, matrix: str = FALLBACK_MATRIX) -> YuvPlanes:
    """``(H, W, 3)`` uint8 RGB -> limited-range 4:2:0 planes in ``matrix`` (``"bt709"`` / ``"bt601"``), with
    the video sink's conversion."""
    import av

    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    vf = vf.reformat(format="yuv420p", dst_colorspace=SWS_MATRIX[matrix], dst_color_range="MPEG", threads=1,
                     interpolation=SWS_FROM_RGB)
    vf.colorspace, vf.color_range = MATRIX_AV_COLORSPACE[matrix], 1
    planes = YuvPlanes.from_av(vf)
    assert planes is not None
    return planes


def make_clip(path: Path, width: int = 1280, height: int = 720, fps: int = 30, seconds: float = 4.0) -> Path:
    """A dark, noisy test clip with AAC audio: the demo night scene's frames (:func:`_test_frames`,
    each with its own sensor noise) played back and forth, x264 CRF 20 veryfast, 48 kHz stereo AAC.

    Rendering the scene costs seconds per frame (a minute at 4K on 2 cores), so a few rendered
    frames are reused instead of rendering every frame; each frame still differs from its
    neighbours in motion and noise, which is what the encoder pays for.
    """
    import av

    images = _test_frames(width, height, 2 if width * height > 1920 * 1080 else 4)
    order = list(range(len(images))) + list(range(len(images) - 2, 0, -1))  # 0 1 2 3 2 1 0 1 ...
    n = max(1, int(round(fps * seconds)))
    rate = 48000
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        vs.options = {"crf": "20", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "stereo"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(images[order[i % len(order)]], format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode())
        t = np.arange(int(rate * n / fps), dtype=np.float32) / rate
        tone = (0.05 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        audio = np.stack([tone, tone])
        for start in range(0, audio.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + 1024]), format="fltp",
                                            layout="stereo")
            af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
            out.mux(aus.encode(af))
        out.mux(aus.encode())
    return path


def experiment_clip(spec: str, work: Path, seconds: float) -> Path:
    """The clip of an A/B experiment (``tools/perf_ab.py``, ``tools/x264_ab.py``): ``"generated"`` (the
    bench's noisy night scene at 720p), ``"real"`` (:data:`REAL_CLIP` scaled to 720p) or a path; the
    first two are written into ``work``, ``seconds`` long."""
    if spec == "generated":
        return make_clip(work / "clip.mp4", seconds=seconds)
    if spec == "real":
        return scale_clip(REAL_CLIP, work / "real.mp4", seconds=seconds)
    return Path(spec)


def scale_clip(src: Path, dst: Path, width: int = 1280, height: int = 720, seconds: float = 4.0) -> Path:
    """The first ``seconds`` of ``src`` scaled to ``width x height`` (x264 CRF 14, BT.709, no audio)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        istream = inp.streams.video[0]
        rate = Fraction(istream.average_rate or 30).limit_denominator(1001)
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        cc = vs.codec_context
        cc.time_base = 1 / rate
        cc.colorspace = cc.color_primaries = cc.color_trc = 1
        cc.color_range = 1
        vs.options = {"crf": "14", "preset": "veryfast"}
        limit = int(round(float(rate) * seconds))
        for i, vf in enumerate(inp.decode(istream)):
            if i >= limit:
                break
            small = vf.reformat(width=width, height=height, format="yuv420p", dst_colorspace="ITU709",
                                dst_color_range="MPEG", interpolation="AREA")
            small.pts, small.time_base = i, 1 / rate
            out.mux(vs.encode(small))
        out.mux(vs.encode())
    return dst


# -- model only ----------------------------------------------------------------------------------
def bench_model(engine: Engine, width: int, height: int, seconds: float = 1.0, batch: int = 1,
                yuv: bool = False, count: int = 4) -> dict[str, Any]:
    """Model-only speed of ``engine`` on ``width x height`` frames (one timed run of ``seconds``).

    ``yuv=True`` gives the engine 4:2:0 planes (what files decode to) instead of RGB frames.
    """
    import cv2

    images = _test_frames(width, height, count)
    pw, ph = engine.proc_shape(width, height)
    frames = []
    for i, img in enumerate(images):
        if yuv:
            planes = rgb_to_planes(img)
            proc = planes.resized_rgb(pw, ph) if (pw, ph) != (width, height) else None
            frames.append(Frame(image=None, index=i, proc=proc, yuv=planes))
        else:
            proc = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA) if (pw, ph) != (width, height) else None
            frames.append(Frame(image=img, index=i, proc=proc))
    batches = [[frames[(i + j) % len(frames)] for j in range(batch)] for i in range(len(frames))]
    enhance: Callable = (lambda b: engine.enhance(b, yuv=True)) if yuv else engine.enhance
    for b in batches[:3]:  # warm-up (cudnn.benchmark, allocator, CUDA graphs)
        enhance(b)
    n = 0
    t0 = time.perf_counter()
    while True:
        enhance(batches[n % len(batches)])
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 5:
            break
    frames_done = n * batch
    return {"device": engine.device_name, "precision": engine.precision, "network_runtime": engine.network_runtime,
            "resolution": f"{width}x{height}",
            "proc_shape": f"{pw}x{ph}", "batch": batch, "domain": "yuv420p" if yuv else "rgb",
            "frames": frames_done, "fps": frames_done / elapsed, "ms_per_frame": 1000.0 * elapsed / frames_done}


def bench_stages(engine: Engine, width: int, height: int, rounds: int = 40, count: int = 4) -> dict[str, Any]:
    """Where a CPU frame of the YUV path goes, per stage (affine-operator models only).

    Interleaves, frame by frame, the stages the engine runs on a decoded 4:2:0 frame: the
    network's input made from the planes (``YuvPlanes.resized_rgb``, in the capture thread), the
    network (``predict_operator`` at the processing size, the engine's threads and CPU runtime), the
    operator applied to the planes (``apply_operator_yuv`` with a reused workspace and the model's output
    cap, if it has one) and, when the engine denoises, the temporal denoiser on its output (the test
    frames are noisy: it runs at full strength). Returns median
    wall and CPU milliseconds per stage (the first few rounds are warm-up).
    """
    from .inference.cpu import CpuBackend, Workspace, apply_operator_yuv, frame_caps, to_float_nchw
    from .inference.temporal_denoise import TemporalDenoiser
    from .models.affine import AffineOperatorModel

    model = engine.model
    if engine.device_type != "cpu" or not isinstance(model, AffineOperatorModel):
        return {"skipped": "CPU engine with an affine-operator model only"}
    planes = [rgb_to_planes(img) for img in _test_frames(width, height, count)]
    pw, ph = engine.proc_shape(width, height)
    backend = CpuBackend(model, torch.get_num_threads(), compile=False, runtime=engine.cpu_runtime)
    net = backend.model
    workspace = Workspace()
    denoiser = TemporalDenoiser() if engine.denoise else None
    stages = ("input", "network", "operator") + (("denoise",) if denoiser is not None else ())
    wall: dict[str, list[float]] = {k: [] for k in stages}
    cpu: dict[str, list[float]] = {k: [] for k in stages}

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall[stage].append(1000.0 * (time.perf_counter() - w0))
        cpu[stage].append(1000.0 * (time.process_time() - c0))
        return out

    reset = getattr(net, "reset_state", None)
    if callable(reset):
        reset()
    with torch.inference_mode():
        for i in range(rounds + 5):
            yuv = planes[i % len(planes)]
            small = timed("input", lambda: yuv.resized_rgb(pw, ph))
            low = to_float_nchw([small])
            offset, gain = timed("network", lambda: backend.predict_operator(low))
            off = offset.float().mul(255.0).permute(0, 2, 3, 1).contiguous().numpy()[0]
            g = gain.float().permute(0, 2, 3, 1).contiguous().numpy()[0]
            enhanced = timed("operator", lambda: apply_operator_yuv(yuv, off, g, workspace=workspace,
                                                                    cap=frame_caps(net, low)[0]))
            if denoiser is not None:
                timed("denoise", lambda: denoiser(enhanced))
    out: dict[str, Any] = {"resolution": f"{width}x{height}", "proc_shape": f"{pw}x{ph}", "rounds": rounds,
                           "torch_threads": torch.get_num_threads(), "network_runtime": backend.network_runtime}
    for k in stages:
        out[k] = {"wall_ms": statistics.median(wall[k][5:]), "cpu_ms": statistics.median(cpu[k][5:])}
    out["total_cpu_ms"] = sum(out[k]["cpu_ms"] for k in stages)
    if denoiser is not None:
        out["denoise"]["weight"] = denoiser.weight   # of the new frame (1: off)
    return out


# -- file to file --------------------------------------------------------------------------------
class _CaptureSink:
    """Keeps every enhanced frame the encoder got (a reference: costs no copy)."""

    accepts_yuv = True

    def __init__(self) -> None:
        self.frames: list[np.ndarray | YuvPlanes] = []
        self.closed = False

    def write(self, frame: Frame, enhanced: np.ndarray | YuvPlanes) -> None:
        self.frames.append(enhanced)

    def close(self, partial: bool = False) -> None:
        self.closed = True


def _options(*, crf: int, preset: str, tune: str | None, batch: int, yuv: bool) -> RunConfig:
    """The file runs' settings (software codecs: the bench measures x264)."""
    return RunConfig(crf=crf, preset=preset, tune=tune, batch=batch, quiet=True, yuv=yuv, gpu_codecs=False)


def bench_file(clip: Path, out: Path, engine: Engine, options: RunConfig, *, capture: bool = True,
               codecs=None) -> dict[str, Any]:
    """End to end: the CLI's own run builder (decode -> enhance -> encode + audio copy), no progress bar.

    Returns timing plus, with ``capture``, ``"enhanced"``: the uncompressed frames the encoder got.
    ``codecs``: a :class:`~lowlight_rt.codecs.CodecChoice` (default: FFmpeg's decoder and libx264).
    """
    from .run import open_run

    engine.reset_state()  # the same temporal state at the start of every run
    keep = _CaptureSink()
    run = open_run(options.replace(source=str(clip), out=str(out)), engine, codecs=codecs,
                   extra_sinks=[keep] if capture else [])
    t0, c0 = time.perf_counter(), time.process_time()
    stats = run.pipeline.run()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {"frames": stats.frames_out, "seconds": elapsed, "fps": stats.frames_out / elapsed,
              "cpu_ms_per_frame": 1e3 * cpu / max(1, stats.frames_out),
              "inference_ms_per_frame": stats.infer_ms_per_frame, "write_ms_per_frame": stats.write_ms_per_frame}
    if capture:
        result["enhanced"] = keep.frames
    return result


def bench_codec_floor(clip: Path, out: Path, engine: Engine, options: RunConfig,
                      enhanced: Sequence, codecs=None) -> dict[str, Any]:
    """The codec floor: decode ``clip`` (the pipeline's source, same settings) and encode the run's
    own ``enhanced`` frames (same sink and settings) in the same two threads, with no model.
    ``codecs``: a :class:`~lowlight_rt.codecs.CodecChoice` (default: the settings' libx264)."""
    from .run import open_input, open_output, use_yuv_path

    config = options.replace(source=str(clip), out=str(out))
    source = open_input(config, engine)
    sink = open_output(config, source, codecs=codecs)
    source.keep_yuv = use_yuv_path(sink, config, engine)
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        source.start()
        while (frame := source.read()) is not None:
            sink.write(frame, enhanced[min(n, len(enhanced) - 1)])
            n += 1
    finally:
        source.stop()
        sink.close()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": n, "seconds": elapsed, "fps": n / elapsed, "cpu_ms_per_frame": 1e3 * cpu / max(1, n)}


def _planes_of(picture: np.ndarray | YuvPlanes, matrix: str) -> YuvPlanes:
    """``picture`` as planes in ``matrix`` (RGB converted as the sink converts it; planes in another
    matrix through RGB)."""
    if isinstance(picture, YuvPlanes):
        if picture.matrix == matrix:
            return picture
        picture = picture.to_rgb()
    return rgb_to_planes(picture, matrix)


def _sq_errors(a: YuvPlanes, b: YuvPlanes) -> tuple[float, int, float, int]:
    """Sum of squared errors and sample counts: (all planes), (luma)."""
    total, count = 0.0, 0
    luma = 0.0
    for i, (pa, pb) in enumerate(((a.y, b.y), (a.u, b.u), (a.v, b.v))):
        d = pa.astype(np.float32) - pb.astype(np.float32)
        sse = float(np.dot(d.ravel(), d.ravel()))
        total += sse
        count += d.size
        if i == 0:
            luma = sse
    return total, count, luma, a.y.size


def _psnr(sse: float, count: int) -> float:
    if count == 0:
        return 0.0
    mse = sse / count
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0 ** 2 / mse))


def written_psnr(path: Path, enhanced: Sequence[np.ndarray | YuvPlanes]) -> dict[str, float]:
    """PSNR (dB) of the video at ``path`` against the uncompressed ``enhanced`` frames, frame by frame
    in order: over all 4:2:0 samples (``psnr_db``, one MSE over the whole clip) and luma only."""
    import av

    sse = luma = 0.0
    count = lcount = 0
    frames = 0
    with av.open(str(path)) as c:
        for vf, ref in zip(c.decode(video=0), enhanced):
            got = YuvPlanes.from_av(vf)
            if got is None:  # not 4:2:0 limited range: compare through RGB -> planes
                got = rgb_to_planes(vf.to_ndarray(format="rgb24"))
            s, n, sl, nl = _sq_errors(got, _planes_of(ref, got.matrix))
            sse, count, luma, lcount = sse + s, count + n, luma + sl, lcount + nl
            frames += 1
    return {"psnr_db": _psnr(sse, count), "psnr_y_db": _psnr(luma, lcount), "frames_compared": frames}


def bench_file_case(label: str, clip: Path, workdir: Path, engine: Engine, options, repeats: int,
                    progress: Progress) -> dict[str, Any]:
    """Repeated, interleaved file-to-file and codec-floor runs on one clip, fidelity and size."""
    e2e: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    last_out = workdir / f"{label}_e2e.mp4"
    psnr: dict[str, float] = {}
    size = 0
    frames = 0
    for r in range(repeats):
        progress.step(f"file {label}: run {r + 1}/{repeats}")
        run = bench_file(clip, last_out, engine, options)
        enhanced = run.pop("enhanced")
        e2e.append(run)
        frames = run["frames"]
        if r == 0:  # the run's own output against its own uncompressed frames
            psnr = written_psnr(last_out, enhanced)
            size = last_out.stat().st_size
        progress.step(f"file {label}: codec floor {r + 1}/{repeats}")
        floors.append(bench_codec_floor(clip, workdir / f"{label}_floor.mp4", engine, options, enhanced))
        del enhanced
    fps = summarize([r["fps"] for r in e2e])
    floor = summarize([r["fps"] for r in floors])
    ratio = summarize([a["fps"] / b["fps"] for a, b in zip(e2e, floors) if b["fps"]])
    duration = frames / 30.0
    result = {
        "label": label, "frames": frames, "end_to_end_fps": fps, "codec_floor_fps": floor,
        "ratio_to_codec_floor": ratio,
        "cpu_ms_per_frame": summarize([r.get("cpu_ms_per_frame", 0.0) for r in e2e]),
        "codec_floor_cpu_ms_per_frame": summarize([r.get("cpu_ms_per_frame", 0.0) for r in floors]),
        "inference_ms_per_frame": statistics.median(r["inference_ms_per_frame"] for r in e2e),
        "write_ms_per_frame": statistics.median(r["write_ms_per_frame"] for r in e2e),
        "file_bytes": size, "kbps_at_30fps": 8 * size / 1000 / duration if duration else 0.0, **psnr,
    }
    progress.write(f"file {label:>9s}: end-to-end {_fmt(fps)} FPS | codec floor {_fmt(floor)} FPS | ratio "
                   f"{ratio['median']:.2f} | CPU {result['cpu_ms_per_frame']['median']:.0f} vs "
                   f"{result['codec_floor_cpu_ms_per_frame']['median']:.0f} ms/frame | PSNR "
                   f"{psnr.get('psnr_db', 0):.2f} dB | {size / 1e6:.2f} MB")
    return result


def yuv_fidelity(clip: Path, engine: Engine, frames: int = 8) -> dict[str, Any]:
    """PSNR of the YUV path's encoder input against the RGB path's (the same frames of ``clip``,
    the RGB output converted as the sink converts it, to the input's matrix), all 4:2:0 samples and luma only.
    The operator's two applications are compared: the temporal denoiser is off meanwhile."""
    outputs = []
    denoise, engine.denoise = engine.denoise, False
    try:
        for keep_yuv in (True, False):
            outputs.append(_path_outputs(clip, engine, keep_yuv, frames))
    finally:
        engine.denoise = denoise
    sse = luma = 0.0
    count = lcount = 0
    for a, b in zip(*outputs):
        s, n, sl, nl = _sq_errors(a, b)
        sse, count, luma, lcount = sse + s, count + n, luma + sl, lcount + nl
    return {"frames": len(outputs[1]), "psnr_db": _psnr(sse, count), "psnr_y_db": _psnr(luma, lcount)}


def _path_outputs(clip: Path, engine: Engine, keep_yuv: bool, frames: int) -> list:
    """The first ``frames`` enhanced frames of ``clip`` as the sink writes them (planes in the input's matrix),
    through the YUV path or the RGB path."""
    from .sources import open_source

    engine.reset_state()
    source = open_source(str(clip), proc_shape=engine.proc_shape)
    source.keep_yuv = keep_yuv
    got = []
    try:
        source.start()
        while len(got) < frames and (frame := source.read()) is not None:
            got.append(_planes_of(engine.enhance([frame], yuv=keep_yuv)[0], source.info.yuv_matrix or FALLBACK_MATRIX))
    finally:
        source.stop()
    return got


# -- the whole bench -----------------------------------------------------------------------------
def _device_configs(devices: Sequence[str]) -> list[tuple[str, bool]]:
    configs: list[tuple[str, bool]] = []
    for d in devices:
        if d == "cpu":
            configs.append(("cpu", False))
        elif d == "cuda" and torch.cuda.is_available():
            configs += [("cuda", True), ("cuda", False)]
    return configs


def run_bench(*, model: str | None = None, proc_size: int | None = None, devices: Sequence[str] = ("cpu", "cuda"),
              seconds: float = 1.0, repeats: int = 3, resolutions: Sequence[str] = tuple(RESOLUTIONS),
              clip_scale: float = 1.0, preset: str = X264_PRESET, crf: int = X264_CRF, tune: str | None = X264_TUNE,
              yuv: bool = True, real_clip: Path | None = REAL_CLIP, viewer: bool = False,
              threads: int | None = None, cpu_runtime: str = DEFAULT_CPU_RUNTIME, denoise: bool = DEFAULT_DENOISE,
              log: Callable[[str], None] | None = None, progress: bool = True, viewer_bench: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every benchmark; returns a JSON-able dict (see module docstring).

    ``viewer``: also measure the viewer with ``viewer_bench`` (handed in by the launcher: the
    runtime does not import the viewer).

    ``clip_scale`` multiplies the generated clips' lengths (:data:`FILE_PLAN`); ``real_clip=None``
    or a missing file skips the real clip (``"real_clip": {"skipped": reason}``).
    """
    t_start = time.perf_counter()
    net, info = load_model(model)
    configs = _device_configs(devices)
    best_device = "cuda" if torch.cuda.is_available() and "cuda" in devices else "cpu"
    real = Path(real_clip) if real_clip is not None else None
    has_real = real is not None and real.is_file()
    n_model = sum(len(resolutions) * (2 if dev == "cuda" else 2) for dev, _ in configs)  # cuda: 2 batches, cpu: 2 domains
    file_runs = {label: max(1, round(repeats * FILE_PLAN[label][1])) for label in resolutions}
    real_runs = repeats if has_real else 0
    # per-stage costs of one frame, on the CPU: at 720p when it is measured, else the first resolution
    stages_label = ("720p" if "720p" in resolutions else resolutions[0]) if resolutions else None
    has_cpu = any(dev == "cpu" for dev, _ in configs)
    n_steps = n_model + sum(2 * r for r in file_runs.values()) + 2 * real_runs + len(resolutions) \
        + (2 if has_real else 0) + 1 + (1 if viewer else 0) + (1 if has_cpu and stages_label else 0)
    prog = Progress(n_steps, enabled=progress)
    say = log or prog.write

    result: dict[str, Any] = {
        "lowlight_rt_version": __version__,
        "machine": {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                    "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "model": info.get("name", model or "default"),
        "settings": {"x264_crf": crf, "x264_preset": preset, "x264_tune": tune,
                     "x264_params": x264_options(crf, preset, tune).get("x264-params"), "yuv_path": yuv,
                     "cpu_runtime": cpu_runtime, "denoise": denoise,
                     "repeats": repeats, "model_seconds_per_run": seconds},
        "model_only": [], "file": [], "targets": {},
    }
    for device, fp16 in configs:
        engine = Engine(net, device=device, fp16=fp16, proc_size=proc_size, threads=threads, cpu_runtime=cpu_runtime,
                        denoise=denoise)
        result.setdefault("proc_size", engine.proc_size)
        variants = [(b, False) for b in (1, 8)] if device == "cuda" else [(1, False), (1, True)]
        for label in resolutions:
            w, h = RESOLUTIONS[label]
            count = 2 if label == "4K" else 4
            reps = max(1, round(repeats * FILE_PLAN[label][1]))
            for batch, in_yuv in variants:
                prog.step(f"model-only {device} {label} batch {batch} {'yuv' if in_yuv else 'rgb'}")
                runs = [bench_model(engine, w, h, seconds=seconds, batch=batch, yuv=in_yuv, count=count)
                        for _ in range(reps)]
                r = {k: v for k, v in runs[0].items() if k not in ("fps", "ms_per_frame", "frames")}
                r.update(label=label, fps=summarize([x["fps"] for x in runs]),
                         ms_per_frame=statistics.median(x["ms_per_frame"] for x in runs))
                result["model_only"].append(r)
                say(f"model-only {r['device']:>8s} {r['precision']:<5s} {label:>5s} {r['domain']:<7s} batch {batch}: "
                    f"{_fmt(r['fps'])} FPS, network at {r['proc_shape']}")
        if device == "cpu" and stages_label is not None:
            prog.step(f"stages of a {stages_label} frame (cpu, yuv)")
            st = bench_stages(engine, *RESOLUTIONS[stages_label])
            result["stages"] = st
            if "skipped" not in st:
                denoised = f"denoise {st['denoise']['cpu_ms']:.1f}, " if "denoise" in st else ""
                say(f"stages      cpu {stages_label} yuv, median ms per frame (CPU): input {st['input']['cpu_ms']:.1f}, "
                    f"network {st['network']['cpu_ms']:.1f}, operator {st['operator']['cpu_ms']:.1f}, "
                    f"{denoised}total {st['total_cpu_ms']:.1f}")
        engine.close()

    engine = Engine(net, device=best_device, fp16=True, proc_size=proc_size, threads=threads, cpu_runtime=cpu_runtime,
                    denoise=denoise)
    batch = RunConfig().batch_size(engine.device_type)
    options = _options(crf=crf, preset=preset, tune=tune, batch=batch, yuv=yuv)
    with tempfile.TemporaryDirectory(prefix="lowlight-bench-") as tmp:
        work = Path(tmp)
        for label in resolutions:
            w, h = RESOLUTIONS[label]
            secs = max(1.0 / 30.0, FILE_PLAN[label][0] * clip_scale)
            prog.step(f"generate {label} clip ({secs:g} s)")
            clip = make_clip(work / f"clip_{label}.mp4", width=w, height=h, seconds=secs)
            case = bench_file_case(label, clip, work, engine, options, file_runs[label], prog)
            case["clip"] = f"{w}x{h} {secs:g}s 30fps H.264+AAC (generated night scene)"
            result["file"].append(case)
            clip.unlink(missing_ok=True)
        fidelity_clip = None
        if has_real:
            prog.step("scale the real night clip to 720p")
            real720 = scale_clip(real, work / "real_720p.mp4", seconds=4.0 * clip_scale)
            case = bench_file_case("real 720p", real720, work, engine, options, real_runs, prog)
            case["clip"] = f"{real.name}, first {4.0 * clip_scale:g} s scaled to 1280x720"
            result["file"].append(case)
            fidelity_clip = real720
        else:
            result["real_clip"] = {"skipped": f"not found: {real}" if real is not None else "not requested"}
            say(f"real clip skipped ({result['real_clip']['skipped']})")
        prog.step("YUV path vs RGB path fidelity")
        if fidelity_clip is None:
            fidelity_clip = make_clip(work / "fid.mp4", seconds=0.3)
        if engine.device_type == "cpu" and yuv:
            fid = yuv_fidelity(fidelity_clip, engine)
            fid["clip"] = "real 720p" if has_real else "generated 720p"
            result["yuv_path_fidelity"] = fid
            say(f"YUV path vs RGB path ({fid['clip']}, {fid['frames']} frames): PSNR {fid['psnr_db']:.2f} dB "
                f"(luma {fid['psnr_y_db']:.2f} dB)")
        if has_real:
            prog.step("done with the real clip")
        engine.close()
    result["file_device"] = engine.device_name
    result["file_precision"] = engine.precision

    t = result["targets"]
    for case in result["file"]:
        if case["label"] not in ("720p", "real 720p"):
            continue
        key = case["label"].replace(" ", "_")
        if best_device == "cpu":
            t[f"cpu_{key}_file_fps>=30"] = case["end_to_end_fps"]["median"] >= CPU_TARGET_FPS
            t[f"cpu_{key}_ratio_to_codec_floor>=0.9"] = case["ratio_to_codec_floor"]["median"] >= CPU_TARGET_RATIO
        t[f"{key}_written_psnr>=38dB"] = case.get("psnr_db", 0.0) >= PSNR_TARGET_DB
    if best_device == "cuda":
        fp16 = [r for r in result["model_only"] if r["label"] == "1080p" and r["precision"] == "fp16"]
        if fp16:
            t["cuda_1080p_fp16_model_fps>=500"] = max(r["fps"]["median"] for r in fp16) >= CUDA_TARGET_FPS_1080P

    if viewer:
        if viewer_bench is None:
            raise UsageError("the viewer benchmark needs the viewer: run it with the lowlight-rt command "
                             "(python -m lowlight_app)")
        prog.step("viewer, 720p@30 fake camera")
        v = viewer_bench(seconds=10.0, width=1280, height=720, fps=30.0, model=model, proc_size=proc_size, denoise=denoise)
        result["viewer"] = v
        say(f"viewer      720p@30 fake camera: display {v.get('display_fps', 0):.1f} FPS, "
            f"median latency {v.get('latency_ms_median', 0):.0f} ms")
    prog.close()
    result["bench_seconds"] = time.perf_counter() - t_start
    return result


def main(argv: Sequence[str] | None = None, *,
         viewer_bench: Callable[..., dict[str, Any]] | None = None) -> int:
    from .cli import OneLineParser   # a usage error is one line, as for the main command

    p = OneLineParser(prog="lowlight-rt bench", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    p.add_argument("--model", "-m", help="checkpoint path or model name (default: the default model)")
    p.add_argument("--proc-size", type=int, help="processing short side (default: the model's)")
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    p.add_argument("--seconds", type=float, default=1.0, help="time per model-only run (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (fewer at 1080p / 4K; default 3)")
    p.add_argument("--resolutions", default=",".join(RESOLUTIONS),
                   help=f"comma-separated subset of {', '.join(RESOLUTIONS)}")
    p.add_argument("--clip-scale", type=float, default=1.0,
                   help="multiply the clip lengths (480p 3 s, 720p 4 s, 1080p 2 s, 4K 0.5 s, real 4 s)")
    p.add_argument("--real-clip", type=Path, default=REAL_CLIP, help="real night clip (scaled to 720p)")
    p.add_argument("--no-real-clip", action="store_true", help="skip the real clip")
    p.add_argument("--preset", default=X264_PRESET, help=f"x264 preset (default {X264_PRESET})")
    p.add_argument("--crf", type=int, default=X264_CRF, help=f"x264 CRF (default {X264_CRF})")
    p.add_argument("--tune", default=X264_TUNE, help="x264 tune (default none)")
    p.add_argument("--rgb-path", action="store_true", help="files through full-size RGB (the pre-YUV path)")
    p.add_argument("--threads", type=int, help="CPU inference threads (default: all cores but one)")
    p.add_argument("--cpu-runtime", choices=CPU_RUNTIMES, default=DEFAULT_CPU_RUNTIME,
                   help="what runs the network on the CPU (default %(default)s, where the checkpoint has an ONNX export)")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=DEFAULT_DENOISE,
                   help="temporal denoising of the enhanced video, as in a run (default: %(default)s)")
    p.add_argument("--viewer", action="store_true", help="also measure the viewer on a 720p@30 fake camera")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown:
        p.error(f"unknown resolution(s) {', '.join(unknown)}; choose from {', '.join(RESOLUTIONS)}")
    devices = ("cpu", "cuda") if args.device == "all" else (args.device,)
    result = run_bench(model=args.model, proc_size=args.proc_size, devices=devices, seconds=args.seconds,
                       repeats=max(1, args.repeats), resolutions=resolutions, clip_scale=args.clip_scale,
                       preset=args.preset, crf=args.crf, tune=args.tune, yuv=not args.rgb_path,
                       real_clip=None if args.no_real_clip else args.real_clip, viewer=args.viewer,
                       threads=args.threads, cpu_runtime=args.cpu_runtime, denoise=args.denoise, progress=not args.quiet, viewer_bench=viewer_bench,
                       log=None if (args.json or not args.quiet) else (lambda _m: None))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(json.dumps(result["targets"], indent=2))
    return 0
