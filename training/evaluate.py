"""Evaluate enhancement models on paired folders, night videos, well-lit and real dark photos.

    python -m training.evaluate --model runs/rt/best.pt --teacher runs/mirnet/best.pt \
        --data ../shared/data/ir-rgb --out eval/
    python -m training.evaluate --model classical --model realtime \
        --video ../shared/data/video/ken2190_night_yard_1080p.mp4 --identity runs/data/val/sice_normal \
        --real ../shared/data/real-dark/dicm --out eval/video

Reference-free measures (no reference exists for real footage; see :mod:`training.video_eval`):
``--video`` clips (first ``--max-frames`` frames, the runtime path): mean luma, ``dark_cast``,
``block``, ``flicker`` and added clipping; ``--identity`` folders of well-exposed pictures: PSNR of
the output against the input (a well-lit input must stay itself); ``--real`` folders of real dark
photos: added clipping (share of pixels at 255, output minus input) and mean luma.

For every model: PSNR / SSIM against the references, the same after GT-mean correction (the output
scaled so its mean grey level equals the reference's; labelled "GT-mean"), the parameter count, the
FLOPs of one forward pass at ``--flops-size`` (counted with ``torch.utils.flop_counter``), and the
forward time on the CPU (and CUDA when present) at that size. Writes ``results.md`` (a markdown
table), ``results.json`` and ``grid.png`` (rows of input | teachers | students | reference).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from lowlight_rt.errors import InputError, LowlightError, ModelError, OutputError, error_line
from lowlight_rt.models import EnhancementModel, load_checkpoint
from lowlight_rt.models.base import resize

from .engine.metrics import quality

log = logging.getLogger("training.evaluate")


@dataclass
class ModelResult:
    """One model's row of the results table."""

    label: str
    role: str                       # "teacher" | "model"
    arch: str
    params: int
    psnr: float = float("nan")
    ssim: float = float("nan")
    psnr_gtmean: float = float("nan")
    ssim_gtmean: float = float("nan")
    gflops: float = float("nan")
    cpu_ms: float = float("nan")
    cuda_ms: float | None = None
    images: int = 0
    per_image: list[dict[str, float]] = field(default_factory=list)


def load_any(spec: str) -> tuple[EnhancementModel, str]:
    """A model from a checkpoint path (runtime format, or a teacher file ``training.teachers`` reads)
    or a registry / shipped model name. Returns ``(model.eval(), label)``."""
    import training.teachers  # noqa: F401 - registers the teacher architectures (e.g. mirnet_v2)

    path = Path(spec)
    if path.exists():
        try:
            model, meta = load_checkpoint(path)
            generic = path.stem in ("best", "last", "teacher", "student")
            name = f"{model.arch_name} ({path.parent.name}/{path.name})" if generic else path.stem
            return model.eval(), str(meta.get("label") or name)
        except ModelError as first:
            load_teacher = getattr(training.teachers, "load_teacher", None)
            if load_teacher is None:
                raise
            try:
                model = load_teacher(path)
            except LowlightError:
                raise first from None
            return model.eval(), f"{model.arch_name} ({path.name})"
    from lowlight_rt import models as _models

    load_model = getattr(_models, "load_model", None)
    if load_model is not None:
        model, _info = load_model(spec)
        return model.eval(), spec
    cls = _models.get_model_class(spec)
    if cls.needs_weights:
        raise ModelError(f"model {spec!r} needs trained weights: pass a checkpoint path")
    return _models.create_model(spec).eval(), spec


def paired_images(data_dir: str | Path, limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(stem, low, high)]`` from ``DIR/low`` and ``DIR/high`` (``(H, W, 3) uint8 RGB``), by stem."""
    from training.data import PairedFolderDataset

    ds = PairedFolderDataset(data_dir)
    items = []
    for i in range(len(ds) if limit is None else min(limit, len(ds))):
        stem, low, high = ds.load_pair(i)
        items.append((stem, low, high))
    if not items:
        raise InputError(f"no image pairs in {data_dir}")
    return items


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(1, 3, H, W) float`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def to_image(t: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` in [0, 1] -> ``(H, W, 3) uint8``."""
    return (t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.inference_mode()
def run_model(model: EnhancementModel, low: torch.Tensor, proc_size: int | None) -> torch.Tensor:
    """Enhance ``low`` ``(1, 3, H, W)``: at full resolution, or the runtime way (network on a copy
    whose short side is ``proc_size``, result carried to full resolution by ``model.enhance``).
    Each call is an independent photo: the model's temporal state is reset first."""
    reset = getattr(model, "reset_state", None)
    if callable(reset):
        reset()
    if proc_size is None or min(low.shape[-2:]) <= proc_size:
        return model(low).clamp(0, 1)
    h, w = low.shape[-2:]
    s = proc_size / min(h, w)
    m = max(1, model.size_multiple)
    size = (max(m, round(h * s / m) * m), max(m, round(w * s / m) * m))
    return model.enhance(low, resize(low, size)).clamp(0, 1)


def count_gflops(model: EnhancementModel, size: tuple[int, int]) -> float:
    """GFLOPs (multiply-add = 2 FLOPs) of one forward pass on ``(1, 3, h, w)``."""
    x = torch.rand(1, 3, *size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    flops = counter.get_total_flops()
    return flops / 1e9 if flops else float("nan")   # nan: the model does no counted torch ops (e.g. OpenCV)


def time_forward(model: EnhancementModel, size: tuple[int, int], device: str, repeats: int = 5) -> float:
    """Median milliseconds of one forward pass on ``(1, 3, h, w)`` (CUDA: FP16, synchronised)."""
    dev = torch.device(device)
    m = model.to(dev)
    x = torch.rand(1, 3, *size, device=dev)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    times = []
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dev.type == "cuda"):
        m(x)
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            m(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1000)
    model.to("cpu")
    return float(np.median(times))


def label_image(img: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` on a dark strip above ``img`` (PIL's default font)."""
    from PIL import Image, ImageDraw

    strip = np.zeros((18, img.shape[1], 3), np.uint8)
    canvas = Image.fromarray(np.concatenate([strip, img], 0))
    ImageDraw.Draw(canvas).text((4, 3), text[: max(4, img.shape[1] // 6)], fill=(255, 255, 255))
    return np.asarray(canvas)


def make_grid(rows: Sequence[Sequence[tuple[str, np.ndarray]]], max_width: int = 320) -> np.ndarray:
    """Tile labelled images: one row per test image, columns input | teachers | models | reference."""
    out_rows = []
    for row in rows:
        tiles = []
        for text, img in row:
            h, w = img.shape[:2]
            if w > max_width:
                t = resize(to_tensor(img), (max(1, round(h * max_width / w)), max_width))
                img = to_image(t)
            tiles.append(label_image(img, text))
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0))) for t in tiles]
        out_rows.append(np.concatenate(tiles, 1))
    width = max(r.shape[1] for r in out_rows)
    out_rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in out_rows]
    return np.concatenate(out_rows, 0)


def markdown_table(results: Iterable[ModelResult], *, flops_size: tuple[int, int], proc_size: int | None,
                   data: str, n_images: int) -> str:
    """The results as a markdown table with a caption saying what was measured."""
    h, w = flops_size
    where = "full resolution" if proc_size is None else f"network at short side {proc_size}, output at full resolution"
    lines = [f"Evaluation on `{data}` ({n_images} pairs, {where}). GT-mean: output scaled so its mean grey "
             f"level equals the reference's before scoring. GFLOPs and times: one forward pass at {w}x{h}; "
             f"CPU with {torch.get_num_threads()} threads (float32), CUDA in FP16.", "",
             "| model | role | arch | params | PSNR (dB) | SSIM | PSNR GT-mean (dB) | SSIM GT-mean | "
             f"GFLOPs @{w}x{h} | CPU ms | CUDA ms |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        cuda = "-" if r.cuda_ms is None else f"{r.cuda_ms:.2f}"
        lines.append(f"| {r.label} | {r.role} | {r.arch} | {r.params / 1e6:.3f}M | {r.psnr:.2f} | {r.ssim:.4f} | "
                     f"{r.psnr_gtmean:.2f} | {r.ssim_gtmean:.4f} | {_num(r.gflops, 3)} | {_num(r.cpu_ms, 1)} | {cuda} |")
    return "\n".join(lines) + "\n"


def _num(value: float, digits: int) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(h, w)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size too small: {text!r}")
    return h, w


def evaluate(models: Sequence[str], data: str | Path, out: str | Path, *, teachers: Sequence[str] = (),
             flops_size: tuple[int, int] = (360, 640), proc_size: int | None = None, limit: int | None = None,
             grid_images: int = 4, speed: bool = True, cuda: bool | None = None) -> list[ModelResult]:
    """Evaluate ``teachers`` and ``models`` (paths or names) on the paired folder ``data``; write the
    table, JSON and grid into ``out``. Returns one :class:`ModelResult` per network."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {out} ({e.strerror})") from None
    pairs = paired_images(data, limit)
    torch.set_flush_denormal(True)   # subnormal weights (official Zero-DCE) slow CPU convolutions ~30x
    cuda = torch.cuda.is_available() if cuda is None else cuda
    specs = [(s, "teacher") for s in teachers] + [(s, "model") for s in models]
    if not specs:
        raise InputError("nothing to evaluate: give --model (and optionally --teacher)")
    results: list[ModelResult] = []
    grid_cols: list[list[tuple[str, np.ndarray]]] = [[("input", low)] for _, low, _ in pairs[:grid_images]]
    for spec, role in specs:
        model, label = load_any(spec)
        res = ModelResult(label=label, role=role, arch=model.arch_name, params=model.num_parameters())
        scores: dict[str, list[float]] = {k: [] for k in ("psnr", "ssim", "psnr_gtmean", "ssim_gtmean")}
        for i, (stem, low, high) in enumerate(pairs):
            pred = run_model(model, to_tensor(low), proc_size)
            q = {k: float(v[0]) for k, v in quality(pred, to_tensor(high)).items()}
            res.per_image.append({"image": stem, **q})
            for k in scores:
                scores[k].append(q[k])
            if i < grid_images:
                grid_cols[i].append((label, to_image(pred)))
        for k, v in scores.items():
            setattr(res, k, float(np.mean(v)))
        res.images = len(pairs)
        res.gflops = count_gflops(model, flops_size)
        if speed:
            res.cpu_ms = time_forward(model, flops_size, "cpu")
            if cuda:
                res.cuda_ms = time_forward(model, flops_size, "cuda")
        results.append(res)
        log.info("%s: PSNR %.2f dB, SSIM %.4f", label, res.psnr, res.ssim)
    for i, (_, _, high) in enumerate(pairs[:grid_images]):
        grid_cols[i].append(("reference", high))
    table = markdown_table(results, flops_size=flops_size, proc_size=proc_size, data=str(data), n_images=len(pairs))
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1, default=float))
    from PIL import Image

    Image.fromarray(make_grid(grid_cols)).save(out / "grid.png")
    print(table)
    return results


@dataclass
class ReferenceFreeResult:
    """One model on one reference-free set (a clip, an identity folder or a real-photo folder)."""

    label: str
    kind: str                        # "video" | "identity" | "real"
    source: str
    measures: dict[str, float]


def _image_folder(folder: str | Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    from training.data import list_images, read_image

    files = list_images(folder)[:limit]
    if not files:
        raise InputError(f"no images in {folder}")
    return [(f.stem, read_image(f)) for f in files]


def evaluate_reference_free(models: Sequence[str], out: str | Path, *, videos: Sequence[str] = (),
                            identity: Sequence[str] = (), real: Sequence[str] = (), proc_size: int | None = None,
                            max_frames: int = 240, limit: int | None = None,
                            grid_every: int = 80) -> list[ReferenceFreeResult]:
    """Run every model over clips and image folders; write ``reference_free.md``/``.json`` and
    ``video_grid.png`` (frames of every clip: input | models) into ``out``."""
    from .video_eval import clip_share, enhance_frame, enhance_video, luma, video_measures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_flush_denormal(True)
    loaded = [load_any(spec) for spec in models]
    results: list[ReferenceFreeResult] = []
    grid_rows: dict[tuple[str, int], list[tuple[str, np.ndarray]]] = {}
    for clip in videos:
        for model, label in loaded:
            kept: list = []
            m = video_measures(enhance_video(model, clip, proc_size, max_frames), keep=kept, keep_every=grid_every)
            results.append(ReferenceFreeResult(label, "video", Path(clip).name, m.as_dict()))
            for k, (inp, enh) in enumerate(kept):
                row = grid_rows.setdefault((clip, k), [(f"{Path(clip).stem[:18]} #{k * grid_every}", inp)])
                row.append((label, enh))
            log.info("%s on %s: %s", label, Path(clip).name, {k: round(v, 3) for k, v in m.as_dict().items()})
    for kind, folders in (("identity", identity), ("real", real)):
        for folder in folders:
            images = _image_folder(folder, limit)
            for model, label in loaded:
                scores = []
                for _stem, img in images:
                    enh = enhance_frame(model, img, proc_size, still=True)
                    if kind == "identity":
                        mse = float(np.mean((enh.astype(np.float64) - img.astype(np.float64)) ** 2))
                        scores.append({"psnr_vs_input": 10 * math.log10(255.0 ** 2 / max(mse, 1e-10)),
                                       "luma_out": float(luma(enh).mean())})
                    else:
                        scores.append({"clip_added": 100.0 * (clip_share(enh) - clip_share(img)),
                                       "luma_in": float(luma(img).mean()), "luma_out": float(luma(enh).mean())})
                keys = scores[0].keys()
                measures = {k: float(np.mean([s_[k] for s_ in scores])) for k in keys}
                first = next(iter(keys))
                measures[f"{first}_min" if kind == "identity" else f"{first}_max"] = float(
                    (min if kind == "identity" else max)(s_[first] for s_ in scores))
                measures["images"] = float(len(scores))
                results.append(ReferenceFreeResult(label, kind, str(folder), measures))
                log.info("%s on %s (%s): %s", label, folder, kind, {k: round(v, 3) for k, v in measures.items()})
    lines = ["| model | kind | source | measures |", "|---|---|---|---|"]
    for r in results:
        text = ", ".join(f"{k} {v:.3f}" for k, v in r.measures.items())
        lines.append(f"| {r.label} | {r.kind} | {r.source} | {text} |")
    table = "\n".join(lines) + "\n"
    (out / "reference_free.md").write_text(table)
    (out / "reference_free.json").write_text(json.dumps([asdict(r) for r in results], indent=1, default=float))
    if grid_rows:
        from PIL import Image

        Image.fromarray(make_grid(list(grid_rows.values()), max_width=360)).save(out / "video_grid.png")
    print(table)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="PATH|NAME",
                   help="a checkpoint or model name to evaluate (repeatable)")
    p.add_argument("--teacher", action="append", default=[], metavar="PATH|NAME",
                   help="a teacher checkpoint, shown before the models (repeatable)")
    p.add_argument("--data", action="append", default=[], help="paired folder with low/ and high/ (repeatable)")
    p.add_argument("--video", action="append", default=[], metavar="CLIP",
                   help="night clip for the reference-free measures (repeatable)")
    p.add_argument("--identity", action="append", default=[], metavar="DIR",
                   help="folder of well-exposed pictures: PSNR of output vs input (repeatable)")
    p.add_argument("--real", action="append", default=[], metavar="DIR",
                   help="folder of real dark photos: added clipping and brightness (repeatable)")
    p.add_argument("--max-frames", type=int, default=240, help="frames per clip (default 240)")
    p.add_argument("--out", default="eval", help="output folder (results.md, results.json, grid.png)")
    p.add_argument("--flops-size", type=parse_size, default=(360, 640), metavar="WxH",
                   help="resolution for FLOPs and timing (default 640x360)")
    p.add_argument("--proc-size", type=int, default=None,
                   help="run the network at this short side and carry the result to full resolution "
                        "(the runtime's path); default: the network sees the full-resolution input")
    p.add_argument("--limit", type=int, default=None, help="evaluate on the first N pairs only")
    p.add_argument("--grid-images", type=int, default=4, help="rows in grid.png")
    p.add_argument("--no-speed", action="store_true", help="skip the timing runs")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.data or args.video or args.identity or args.real):
        p.error("give at least one of --data, --video, --identity, --real")
    try:
        for i, data in enumerate(args.data):
            out = Path(args.out) if len(args.data) == 1 else Path(args.out) / (Path(data).name or f"data{i}")
            evaluate(args.model, data, out, teachers=args.teacher, flops_size=args.flops_size,
                     proc_size=args.proc_size, limit=args.limit, grid_images=args.grid_images,
                     speed=not args.no_speed)
        if args.video or args.identity or args.real:
            evaluate_reference_free([*args.teacher, *args.model], args.out, videos=args.video,
                                    identity=args.identity, real=args.real, proc_size=args.proc_size,
                                    max_frames=args.max_frames, limit=args.limit)
    except LowlightError as e:
        if args.debug:
            raise
        print(error_line("python -m training.evaluate", e), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
