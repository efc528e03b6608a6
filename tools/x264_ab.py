"""x264 settings compared on the same enhanced frames (docs/PERFORMANCE.md section 7).

Runs the default model once over a clip (file to file, the CLI's own job code) and keeps the enhanced
4:2:0 frames; then, for each setting, in turn and ``--repeats`` times (A B C A B C ...), the codec floor:
decode of the clip and encode of those frames with that setting (the bench's ``bench_codec_floor``).
Prints CPU ms per frame (median; decode included, the same for every setting), PSNR of the written
video against the enhanced frames, and the file size.

    PYTHONPATH=. python tools/x264_ab.py --clip real --repeats 2 \\
        --setting preset=veryfast --setting preset=veryfast,x264-params=subme=1 --setting preset=superfast
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from lowlight_rt.bench import _options, bench_codec_floor, bench_file, experiment_clip, written_psnr
from lowlight_rt.codecs import SOFTWARE_ENCODER, X264_CRF, X264_PRESET, CodecChoice
from lowlight_rt.inference import Engine
from lowlight_rt.models.catalog import load_model


def parse_setting(text: str) -> dict[str, str]:
    """``"preset=veryfast,crf=19,x264-params=subme=1:partitions=i8x8,i4x4"`` -> libx264 options (CRF defaults
    to the project's). A comma starts a new option only when ``key=`` follows it."""
    options = {"crf": str(X264_CRF)}
    for part in re.split(r",(?=[\w-]+=)", text):
        key, _, value = part.partition("=")
        if not value:
            raise SystemExit(f"bad setting {part!r}: expected key=value")
        options[key] = value
    return options


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="real", help="'generated', 'real' (night yard scaled to 720p) or a path")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--setting", action="append", required=True, help="libx264 options, comma-separated")
    args = p.parse_args(argv)
    settings = [(text, parse_setting(text)) for text in args.setting]
    net, _ = load_model(None)
    engine = Engine(net, device="cpu")
    options = _options(crf=X264_CRF, preset=X264_PRESET, tune=None, batch=1, yuv=True)
    with tempfile.TemporaryDirectory(prefix="lowlight-x264-") as tmp:
        work = Path(tmp)
        clip = experiment_clip(args.clip, work, args.seconds)
        enhanced = bench_file(clip, work / "enhanced.mp4", engine, options)["enhanced"]
        rows: dict[str, dict] = {text: {"cpu": []} for text, _ in settings}
        for _ in range(args.repeats):
            for text, x264 in settings:
                out = work / "out.mp4"
                floor = bench_codec_floor(clip, out, engine, options, enhanced,
                                          codecs=CodecChoice(None, SOFTWARE_ENCODER, x264))
                rows[text]["cpu"].append(floor["cpu_ms_per_frame"])
                if "psnr" not in rows[text]:   # the same file every repeat: measured once
                    rows[text]["psnr"] = written_psnr(out, enhanced)["psnr_db"]
                    rows[text]["kB"] = out.stat().st_size / 1e3
                print(f"{text:50s} CPU {floor['cpu_ms_per_frame']:5.1f} ms/frame", file=sys.stderr, flush=True)
    print("| x264 setting | CPU ms/frame, decode + encode (median) | PSNR written vs enhanced | size |")
    print("|---|---|---|---|")
    for text, r in rows.items():
        print(f"| {text} | {statistics.median(r['cpu']):.1f} | {r['psnr']:.2f} dB | {r['kB']:.0f} kB |")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
