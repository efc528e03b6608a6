"""``lowlight-rt bench``: speed of the model, of the file pipeline, and of the codec alone.

Reports, in one run:

* model-only FPS (``Engine.enhance``: upload, network at the processing size, full-resolution
  application, download) at 720p and 1080p for each available device / precision;
* end-to-end file FPS (decode -> enhance -> H.264 encode + audio copy) on a generated 720p clip;
* decode+encode-only FPS on the SAME clip with the same threads and encoder settings (the codec
  ceiling), and the ratio end-to-end / ceiling;
* optionally the viewer's display FPS and latency on a 720p fake camera (``--viewer``).

Targets (README): 2-core CPU 720p file-to-file >= 30 FPS and >= 0.8x the codec ceiling;
CUDA 1080p FP16 model-only >= 500 FPS.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import __version__
from .config import X264_CRF, X264_PRESET, RunConfig
from .engine import Engine
from .errors import UsageError
from .frames import Frame
from .models.hub import load_model

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
CPU_TARGET_FPS = 30.0
CPU_TARGET_RATIO = 0.8
CUDA_TARGET_FPS_1080P = 500.0


@functools.lru_cache(maxsize=2)
def _test_frames(width: int, height: int, count: int = 4) -> tuple[np.ndarray, ...]:
    """Dark, noisy ``(H, W, 3)`` uint8 frames from the demo scene (realistic content, not flat noise).

    Cached: rendering the scene takes seconds at 1080p and every device / precision reuses it.
    """
    from .demo import DEMO_PARAMS, NightScene
    from .synth import simulate_low_light

    scene = NightScene(width, height, 30, count / 30.0, 7)
    rng = np.random.default_rng(0)
    return tuple(simulate_low_light(scene.frame(i), DEMO_PARAMS, rng=rng) for i in range(count))


def bench_model(engine: Engine, width: int, height: int, seconds: float = 3.0, batch: int = 1) -> dict[str, Any]:
    """Model-only speed of ``engine`` on ``width x height`` frames (processing size = engine's)."""
    images = _test_frames(width, height)
    pw, ph = engine.proc_shape(width, height)
    import cv2

    frames = [Frame(image=img, index=i, proc=cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA)
                    if (pw, ph) != (width, height) else None) for i, img in enumerate(images)]
    batches = [[frames[(i + j) % len(frames)] for j in range(batch)] for i in range(len(frames))]
    for b in batches[:3]:  # warm-up (cudnn.benchmark, allocator, CUDA graphs)
        engine.enhance(b)
    n = 0
    t0 = time.perf_counter()
    while True:
        engine.enhance(batches[n % len(batches)])
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 5:
            break
    frames_done = n * batch
    return {"device": engine.device_name, "precision": engine.precision, "resolution": f"{width}x{height}",
            "proc_shape": f"{pw}x{ph}", "batch": batch, "frames": frames_done,
            "fps": frames_done / elapsed, "ms_per_frame": 1000.0 * elapsed / frames_done}


def make_clip(path: Path, width: int = 1280, height: int = 720, fps: int = 30, seconds: float = 4.0) -> Path:
    """A dark, noisy 720p test clip with AAC audio (the demo scene, rendered at this size)."""
    from .demo import write_demo_clip

    write_demo_clip(path, width=width, height=height, fps=fps, seconds=seconds)
    return path


def bench_codec(clip: Path, out: Path, *, preset: str, crf: int) -> dict[str, Any]:
    """Decode + encode only (no model), same source/sink classes and threads as the pipeline."""
    from .sinks import VideoFileSink
    from .sources import open_source

    source = open_source(str(clip))
    info = source.info
    sink = VideoFileSink(out, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         audio_from=str(clip), crf=crf, preset=preset, metadata=info.metadata)
    n = 0
    t0 = time.perf_counter()
    try:
        source.start()
        while (frame := source.read()) is not None:
            sink.write(frame, frame.image)
            n += 1
    finally:
        source.stop()
        sink.close()
    elapsed = time.perf_counter() - t0
    return {"frames": n, "seconds": elapsed, "fps": n / elapsed}


def bench_file(clip: Path, out: Path, engine: Engine, *, preset: str, crf: int, batch: int) -> dict[str, Any]:
    """End-to-end: the CLI's own run builder (decode -> enhance -> encode + audio copy), no progress bar."""
    from .run import open_run

    config = RunConfig(source=str(clip), out=str(out), crf=crf, preset=preset, batch=batch, quiet=True)
    run = open_run(config, engine)
    t0 = time.perf_counter()
    stats = run.pipeline.run()
    elapsed = time.perf_counter() - t0
    return {"frames": stats.frames_out, "seconds": elapsed, "fps": stats.frames_out / elapsed,
            "inference_ms_per_frame": stats.infer_ms_per_frame, "write_ms_per_frame": stats.write_ms_per_frame}


def _device_configs(devices: Sequence[str]) -> list[tuple[str, bool]]:
    configs: list[tuple[str, bool]] = []
    for d in devices:
        if d == "cpu":
            configs.append(("cpu", False))
        elif d == "cuda" and torch.cuda.is_available():
            configs += [("cuda", True), ("cuda", False)]
    return configs


def run_bench(*, model: str | None = None, proc_size: int | None = None, devices: Sequence[str] = ("cpu", "cuda"),
              seconds: float = 3.0, clip_seconds: float = 4.0, preset: str = X264_PRESET, crf: int = X264_CRF,
              viewer: bool = False, threads: int | None = None, log=print,
              viewer_bench: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run every benchmark; returns a JSON-able dict (see module docstring).

    ``viewer``: also measure the viewer with ``viewer_bench`` (handed in by the launcher: the runtime
    does not import the viewer)."""
    net, info = load_model(model)
    result: dict[str, Any] = {
        "lowlight_rt_version": __version__,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "model": info.get("name", model or "default"),
        "model_only": [], "file": {}, "targets": {},
    }
    best_device = "cuda" if torch.cuda.is_available() and "cuda" in devices else "cpu"
    for device, fp16 in _device_configs(devices):
        engine = Engine(net, device=device, fp16=fp16, proc_size=proc_size, threads=threads)
        result.setdefault("proc_size", engine.proc_size)
        for label, (w, h) in RESOLUTIONS.items():
            for batch in ((1, 8) if device == "cuda" else (1,)):
                r = bench_model(engine, w, h, seconds=seconds, batch=batch)
                r["label"] = label
                result["model_only"].append(r)
                log(f"model-only  {r['device']:>12s} {r['precision']:<5s} {label:>5s} batch {batch}: "
                    f"{r['fps']:8.1f} FPS ({r['ms_per_frame']:.2f} ms/frame, network at {r['proc_shape']})")
        engine.close()

    with tempfile.TemporaryDirectory(prefix="lowlight-bench-") as tmp:
        clip = make_clip(Path(tmp) / "clip720.mp4", seconds=clip_seconds)
        engine = Engine(net, device=best_device, fp16=True, proc_size=proc_size, threads=threads)
        batch = RunConfig().batch_size(engine.device_type)
        bench_file(clip, Path(tmp) / "warm.mp4", engine, preset=preset, crf=crf, batch=batch)  # warm-up run
        e2e = bench_file(clip, Path(tmp) / "e2e.mp4", engine, preset=preset, crf=crf, batch=batch)
        ceiling = bench_codec(clip, Path(tmp) / "codec.mp4", preset=preset, crf=crf)
        # The enhanced video is brighter and carries more visible detail/noise than the dark input, so
        # x264 spends more time on it: decode+encode of the run's own output isolates that codec cost.
        output_ceiling = bench_codec(Path(tmp) / "e2e.mp4", Path(tmp) / "codec_out.mp4", preset=preset, crf=crf)
        engine.close()
    ratio = e2e["fps"] / ceiling["fps"] if ceiling["fps"] else 0.0
    result["file"] = {"clip": f"1280x720 {clip_seconds:g}s 30fps H.264+AAC (generated)", "device": engine.device_name,
                      "precision": engine.precision, "x264_preset": preset, "crf": crf,
                      "end_to_end": e2e, "codec_only": ceiling, "ratio_to_ceiling": ratio,
                      "codec_only_on_enhanced_output": output_ceiling,
                      "ratio_to_output_ceiling": e2e["fps"] / output_ceiling["fps"] if output_ceiling["fps"] else 0.0}
    log(f"file 720p   end-to-end {e2e['fps']:.1f} FPS; decode+encode only {ceiling['fps']:.1f} FPS; "
        f"ratio {ratio:.2f} ({engine.device_name}, x264 {preset}); decode+encode of the enhanced output "
        f"{output_ceiling['fps']:.1f} FPS (ratio {result['file']['ratio_to_output_ceiling']:.2f})")

    if best_device == "cpu":
        result["targets"]["cpu_720p_file_fps>=30"] = e2e["fps"] >= CPU_TARGET_FPS
        result["targets"]["cpu_720p_ratio>=0.8"] = ratio >= CPU_TARGET_RATIO
    else:
        fp16 = [r for r in result["model_only"] if r["label"] == "1080p" and r["precision"] == "fp16"]
        if fp16:
            result["targets"]["cuda_1080p_fp16_model_fps>=500"] = max(r["fps"] for r in fp16) >= CUDA_TARGET_FPS_1080P
        result["targets"]["cuda_file_codec_bound(ratio>=0.8)"] = ratio >= CPU_TARGET_RATIO

    if viewer:
        if viewer_bench is None:
            raise UsageError("the viewer benchmark needs the viewer: run it with the lowlight-rt command (python -m lowlight_app)")
        v = viewer_bench(seconds=10.0, width=1280, height=720, fps=30.0, model=model, proc_size=proc_size)
        result["viewer"] = v
        log(f"viewer      720p@30 fake camera: display {v.get('display_fps', 0):.1f} FPS, "
            f"median latency {v.get('latency_ms_median', 0):.0f} ms")
    return result


def main(argv: Sequence[str] | None = None, *,
         viewer_bench: Callable[..., dict[str, Any]] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lowlight-rt bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (logs go to stderr)")
    p.add_argument("--model", "-m", help="checkpoint path or model name (default: the default model)")
    p.add_argument("--proc-size", type=int, help="processing short side (default: the model's)")
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    p.add_argument("--seconds", type=float, default=3.0, help="time per model-only measurement")
    p.add_argument("--clip-seconds", type=float, default=4.0, help="length of the generated 720p clip")
    p.add_argument("--preset", default=X264_PRESET, help=f"x264 preset for both file runs (default {X264_PRESET})")
    p.add_argument("--crf", type=int, default=X264_CRF, help=f"x264 quality (default {X264_CRF})")
    p.add_argument("--threads", type=int, help="CPU inference threads (default: all cores)")
    p.add_argument("--viewer", action="store_true", help="also measure the viewer on a 720p@30 fake camera")
    args = p.parse_args(argv)
    devices = ("cpu", "cuda") if args.device == "all" else (args.device,)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    result = run_bench(model=args.model, proc_size=args.proc_size, devices=devices, seconds=args.seconds,
                       clip_seconds=args.clip_seconds, preset=args.preset, crf=args.crf, viewer=args.viewer,
                       threads=args.threads, log=log, viewer_bench=viewer_bench)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0
