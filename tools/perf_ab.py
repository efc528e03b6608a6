"""Interleaved A/B runs of file-to-file settings on one clip (the experiments in docs/PERFORMANCE.md).

Each repeat runs every configuration once, in turn (A B C A B C ...), so a shared, noisy machine
slows them alike; the table gives medians. For each configuration: end-to-end FPS, the CPU time per frame (process time: far
less noisy than wall time on a shared machine, and on 2 cores the throughput limit is about
2 / CPU time), the codec floor
(decode + encode of that run's own enhanced frames, no model), their ratio, PSNR of the written
video against the uncompressed enhanced frames, and the file size.

    PYTHONPATH=. python tools/perf_ab.py --clip generated --seconds 2 --repeats 3 \\
        --config rgb,crf=18 --config yuv,crf=18 --config yuv,crf=23
    PYTHONPATH=. python tools/perf_ab.py --clip real --seconds 4 --repeats 4 \\
        --config yuv,x264-params=subme=1 --config yuv,x264-params=subme=1:partitions=i8x8,i4x4
    PYTHONPATH=. python tools/perf_ab.py --clip generated --seconds 4 --repeats 4 --config yuv,denoise=0 --config yuv
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lowlight_rt.bench import _options, bench_codec_floor, bench_file, experiment_clip, written_psnr
from lowlight_rt.codecs import SOFTWARE_ENCODER, X264_CRF, X264_PRESET, CodecChoice, x264_options
from lowlight_rt.config import DEFAULT_CPU_RUNTIME, DEFAULT_DENOISE
from lowlight_rt.inference import Engine
from lowlight_rt.models.catalog import load_model


def parse_config(text: str) -> dict:
    """``"yuv,crf=20,preset=superfast,tune=fastdecode,threads=1,runtime=torch,denoise=0,x264-params=subme=1"`` ->
    settings dict (``x264-params`` replaces the preset's added parameters; a comma inside a value is kept)."""
    cfg = {"name": text, "yuv": True, "crf": X264_CRF, "preset": X264_PRESET, "tune": None, "threads": None,
           "runtime": DEFAULT_CPU_RUNTIME, "denoise": DEFAULT_DENOISE, "x264-params": None}
    for part in re.split(r",(?=(?:yuv|rgb)(?:,|$)|[\w-]+=)", text):
        if part in ("yuv", "rgb"):
            cfg["yuv"] = part == "yuv"
        elif "=" in part:
            k, v = part.split("=", 1)
            cfg[k] = int(v) if k in ("crf", "threads") else bool(int(v)) if k == "denoise" else v
    return cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="generated", help="'generated', 'real' (night yard scaled to 720p) or a path")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--model", default=None)
    args = p.parse_args(argv)
    configs = [parse_config(c) for c in args.config]
    net, _ = load_model(args.model)
    rows = {c["name"]: {"fps": [], "floor": [], "ratio": [], "cpu": [], "floor_cpu": [], "psnr": None, "bytes": None}
            for c in configs}
    with tempfile.TemporaryDirectory(prefix="lowlight-ab-") as tmp:
        work = Path(tmp)
        clip = experiment_clip(args.clip, work, args.seconds)
        t0 = time.perf_counter()
        for rep in range(args.repeats):
            for cfg in configs:
                engine = Engine(net, device="cpu", threads=cfg["threads"], cpu_runtime=cfg["runtime"], denoise=cfg["denoise"])
                opts = _options(crf=cfg["crf"], preset=cfg["preset"], tune=cfg["tune"], batch=1, yuv=cfg["yuv"])
                codecs = None
                if cfg["x264-params"] is not None:
                    x264 = {**x264_options(cfg["crf"], cfg["preset"], cfg["tune"]), "x264-params": cfg["x264-params"]}
                    codecs = CodecChoice(None, SOFTWARE_ENCODER, x264)
                out = work / "out.mp4"
                run = bench_file(clip, out, engine, opts, codecs=codecs)
                enhanced = run.pop("enhanced")
                row = rows[cfg["name"]]
                if row["psnr"] is None:
                    row["psnr"] = written_psnr(out, enhanced)["psnr_db"]
                    row["bytes"] = out.stat().st_size
                floor = bench_codec_floor(clip, work / "floor.mp4", engine, opts, enhanced, codecs=codecs)
                row["fps"].append(run["fps"])
                row["floor"].append(floor["fps"])
                row["ratio"].append(run["fps"] / floor["fps"])
                row["cpu"].append(run["cpu_ms_per_frame"])
                row["floor_cpu"].append(floor["cpu_ms_per_frame"])
                print(f"[{time.perf_counter() - t0:6.0f} s] rep {rep + 1} {cfg['name']:<32s} e2e {run['fps']:5.1f} "
                      f"floor {floor['fps']:5.1f} ratio {run['fps'] / floor['fps']:.2f} CPU ms/frame {run['cpu_ms_per_frame']:.0f} "
                      f"(floor {floor['cpu_ms_per_frame']:.0f})", file=sys.stderr, flush=True)
                engine.close()
    print("| config | end-to-end FPS (median, min-max) | codec floor FPS | ratio | CPU ms/frame end-to-end | "
          "CPU ms/frame floor | PSNR dB | size MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {statistics.median(r['fps']):.1f} ({min(r['fps']):.1f}-{max(r['fps']):.1f}) | "
              f"{statistics.median(r['floor']):.1f} | {statistics.median(r['ratio']):.2f} | "
              f"{statistics.median(r['cpu']):.0f} | {statistics.median(r['floor_cpu']):.0f} | {r['psnr']:.2f} | "
              f"{r['bytes'] / 1e6:.2f} |")
    print(json.dumps(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
