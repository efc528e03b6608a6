"""The GPU half of ``tools/gpu_check.sh``: prints one JSON object on stdout (progress on stderr).

Measures, where CUDA exists:

* 1080p model-only FPS (``Engine.enhance``) in FP16 and FP32, batch 1 and 8 (target FP16 >= 500);
* FP16 vs FP32 on real frames (the carried night clip, else the bundled demo clip): largest and
  mean absolute difference of the enhanced uint8 frames, and whether the engine's own FP16 check
  kept FP16;
* 1080p file to file with the CPU codecs (FFmpeg's decoder, libx264), and with NVDEC / NVENC where
  :func:`lowlight_rt.codecs.choose_codecs` finds them usable (else the reason they were skipped).

Without CUDA it says so (``"cuda": false``) and measures nothing on the GPU; the codec choice is
still reported, so the script can be dry-run anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
CARRIED_CLIP = REPO / ".whl" / "real_night_1080p.mp4"
DEMO_CLIP = REPO / "assets" / "demo" / "night_demo.mp4"


def log(msg: str) -> None:
    print(f"[gpu_bench] {msg}", file=sys.stderr, flush=True)


def real_frames(path: Path, count: int = 8) -> list[np.ndarray]:
    """The first ``count`` frames of ``path`` as ``(H, W, 3)`` uint8 RGB (the source's own conversion)."""
    from lowlight_rt.sources import open_source

    src = open_source(str(path))
    out = []
    try:
        src.start()
        while len(out) < count and (f := src.read()) is not None:
            out.append(f.image)
    finally:
        src.stop()
    return out


DEVICE = "cuda"  # "cpu" with --rehearse-on-cpu: the same code paths, run here without a GPU


def fp16_vs_fp32(net, frames: list[np.ndarray]) -> dict[str, Any]:
    """Max / mean |FP16 - FP32| (uint8 codes) of the enhanced frames, each engine from a fresh state."""
    from lowlight_rt.inference import Engine
    from lowlight_rt.frames import Frame

    outs = {}
    for fp16 in (True, False):
        engine = Engine(net, device=DEVICE, fp16=fp16, denoise=False)   # the network's precision alone
        engine.reset_state()
        outs[fp16] = [engine.enhance([Frame(image=img, index=i)])[0].astype(np.int16) for i, img in enumerate(frames)]
        precision = engine.precision
        engine.close()
        if fp16:
            kept = precision == "fp16"
    diffs = [np.abs(a - b) for a, b in zip(outs[True], outs[False])]
    return {"frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "max_abs_diff_codes": int(max(d.max() for d in diffs)),
            "mean_abs_diff_codes": float(np.mean([d.mean() for d in diffs])),
            "fp16_kept_by_engine_check": kept}


def file_run(clip: Path, out: Path, net, *, gpu_codecs: bool) -> dict[str, Any]:
    """1080p file to file on CUDA (batch 4) with CPU or GPU codecs; returns FPS and the codecs used."""
    from lowlight_rt.bench import bench_file
    from lowlight_rt.inference import Engine
    from lowlight_rt.config import RunConfig
    from lowlight_rt.run import codec_choice

    engine = Engine(net, device=DEVICE, fp16=True)
    options = RunConfig(batch=4, quiet=True, gpu_codecs=gpu_codecs)
    choice = codec_choice(options, engine)
    if gpu_codecs and not choice.gpu:
        engine.close()
        return {"skipped": "; ".join(choice.notes)}
    try:
        bench_file(clip, out, engine, options, capture=False, codecs=choice)  # warm-up
        runs = [bench_file(clip, out, engine, options, capture=False, codecs=choice) for _ in range(2)]
    finally:
        engine.close()
    fps = sorted(r["fps"] for r in runs)
    return {"decoder": choice.decoder or "h264 (FFmpeg default)", "encoder": choice.encoder,
            "notes": list(choice.notes), "frames": runs[0]["frames"], "fps_runs": fps,
            "fps_median": float(np.median(fps)), "inference_ms_per_frame": runs[-1]["inference_ms_per_frame"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=2.0, help="per model-only measurement")
    p.add_argument("--model", default=None)
    p.add_argument("--rehearse-on-cpu", action="store_true",
                   help="run every GPU step on the CPU at 360p (checks the script's code paths without a GPU)")
    args = p.parse_args(argv)
    global DEVICE
    size = (1920, 1080)
    if args.rehearse_on_cpu:
        DEVICE, size = "cpu", (640, 360)
    import av

    from lowlight_rt.bench import bench_model, make_clip
    from lowlight_rt.codecs import GPU_DECODER, GPU_ENCODER, choose_codecs
    from lowlight_rt.inference import Engine
    from lowlight_rt.models.catalog import load_model

    t0 = time.perf_counter()
    cuda = torch.cuda.is_available() or args.rehearse_on_cpu
    result: dict[str, Any] = {
        "rehearsal_on_cpu": args.rehearse_on_cpu,
        "cuda": cuda, "torch": torch.__version__, "av": av.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else DEVICE,
        "codecs_listed": {name: name in av.codecs_available for name in (GPU_DECODER, GPU_ENCODER)},
    }
    choice = choose_codecs(True)
    result["codec_choice"] = {"decoder": choice.decoder, "encoder": choice.encoder, "notes": list(choice.notes)}
    if not cuda:
        result["note"] = "CUDA not available: no GPU measurements (dry run)"
        result["seconds"] = time.perf_counter() - t0
        print(json.dumps(result))
        return 0
    net, info = load_model(args.model)
    result["model"] = info.get("name", args.model or "default")
    errors: dict[str, str] = {}

    def step(name: str, fn):
        log(f"{name} ...")
        try:
            result[name] = fn()
        except Exception as exc:  # one failing part must not hide the others' numbers
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        log(f"{name}: {json.dumps(result.get(name, errors.get(name)), default=str)[:300]}")

    def model_only():
        # the GPU's work: network and operator; the temporal denoiser runs on the CPU after the download
        # (measured by the next step; file runs include it)
        rows = []
        for fp16 in (True, False):
            engine = Engine(net, device=DEVICE, fp16=fp16, denoise=False)
            for batch in (1, 8):
                r = bench_model(engine, *size, seconds=args.seconds, batch=batch)
                rows.append({k: r[k] for k in ("precision", "batch", "fps", "ms_per_frame", "proc_shape")})
            engine.close()
        return rows

    step("model_only_1080p", model_only)

    def denoise_cost():
        """CPU ms per 1080p RGB frame of the temporal denoiser (the bench's noisy frames brightened 4x)."""
        from lowlight_rt.bench import _test_frames
        from lowlight_rt.inference.temporal_denoise import TemporalDenoiser

        frames = [np.clip(f.astype(np.float32) * 4.0, 0, 255).astype(np.uint8) for f in _test_frames(*size, 4)]
        denoiser = TemporalDenoiser()
        for i in range(8):
            denoiser(frames[i % 4])
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(40):
            denoiser(frames[i % 4])
        return {"cpu_ms": 25.0 * (time.process_time() - c0), "wall_ms": 25.0 * (time.perf_counter() - w0),
                "weight": denoiser.weight}

    step("denoise_1080p_cpu", denoise_cost)
    clip = CARRIED_CLIP if CARRIED_CLIP.is_file() and not args.rehearse_on_cpu else DEMO_CLIP
    result["real_frames_from"] = clip.name
    step("fp16_vs_fp32", lambda: fp16_vs_fp32(net, real_frames(clip)))
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        work = Path(tmp)
        if CARRIED_CLIP.is_file() and not args.rehearse_on_cpu:
            clip1080 = CARRIED_CLIP
        else:
            clip1080 = make_clip(work / "clip1080.mp4", width=size[0], height=size[1], seconds=2.0)
        result["file_clip"] = clip1080.name
        step("file_1080p_cpu_codecs", lambda: file_run(clip1080, work / "cpu.mp4", net, gpu_codecs=False))
        step("file_1080p_gpu_codecs", lambda: file_run(clip1080, work / "gpu.mp4", net, gpu_codecs=True))
    fp16 = [r["fps"] for r in result.get("model_only_1080p", []) if r["precision"] == "fp16"]
    result["targets"] = {"cuda_1080p_fp16_model_fps>=500": bool(fp16) and max(fp16) >= 500.0}
    result["errors"] = errors
    result["seconds"] = time.perf_counter() - t0
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
