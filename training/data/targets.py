"""Teacher targets for real dark pictures that have no reference: run, fuse, clean, write pairs.

    python -m training.data.targets --inputs runs/data/frames --out runs/data/distill \
        --teacher iat --teacher cpga_net_plusplus --teacher lyt_net --cache runs/teacher_cache

For every input picture each teacher runs once (through :class:`~training.data.cache.TeacherCache`:
one file per image and teacher, so a killed run resumes where it stopped), the outputs are fused
and cleaned, and the result is written as a paired folder ``OUT/low`` (links to the inputs) +
``OUT/high`` (PNG targets) that any ``paired`` source trains on. Fusion and cleaning:

1. **Fusion by agreement**: per pixel, the output of the teacher closest to the teachers' per-channel
   median (a medoid; with two teachers, their mean): a teacher that paints a cast or a halo the others
   do not is outvoted where it disagrees, and every fused colour is one a teacher actually produced.
2. **Exposure**: the fused picture's mean luma is limited to ``max_luma`` by a gain (LOL-trained
   teachers push every scene to LOL's bright indoor level; a night scene stays a night scene).
3. **Highlights kept**: where the input is already well exposed (local luma from ``keep_lo`` to
   ``keep_hi``) the target blends back to the input: lit signs and lamps are not blown out, and a
   well-lit area stays itself (the LOL teachers brighten everything to the same level).
4. **Neutral blacks**: colour is removed where the input's local luma is below what can carry colour
   (the student's own rule, :func:`lowlight_rt.models.affine.neutralize_dark_chroma` thresholds).
5. **Clean**: OpenCV's non-local-means denoiser on the target (chroma more strongly than luma): the
   teachers amplify the input's noise and codec blocks; the student must learn not to.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from lowlight_rt.errors import InputError, LowlightError

from .cache import TeacherCache
from .io import list_images, read_image
from .transforms import to_tensor

__all__ = ["fuse_teachers", "clean_target", "build_targets"]

log = logging.getLogger("training.data.targets")

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def fuse_teachers(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel medoid (two teachers: mean) of ``(H, W, 3) float32`` outputs in [0, 1] -> ``(H, W, 3)``.

    For each pixel the teacher whose RGB is nearest (L1) to the per-channel median is taken.
    """
    if not outputs:
        raise ValueError("no teacher outputs to fuse")
    stack = np.stack(outputs)                                  # (T, H, W, 3)
    if len(outputs) <= 2:
        return stack.mean(axis=0)
    median = np.median(stack, axis=0)
    pick = np.abs(stack - median).sum(-1).argmin(0)           # (H, W) teacher index
    return np.take_along_axis(stack, pick[None, ..., None].repeat(3, -1), 0)[0]


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    s = np.clip((x - lo) / (hi - lo), 0, 1)
    return s * s * (3 - 2 * s)


def clean_target(low: np.ndarray, target: np.ndarray, *, max_luma: float = 0.42, grey_black: float = 0.02,
                 grey_colour: float = 0.08, keep_lo: float = 0.35, keep_hi: float = 0.7,
                 denoise: float = 4.0) -> np.ndarray:
    """Exposure limit, neutral blacks and denoising of a fused target (see module doc).

    Args:
        low: ``(H, W, 3) float32`` input in [0, 1].
        target: ``(H, W, 3) float32`` fused teacher output in [0, 1].
    Returns:
        ``(H, W, 3) uint8`` target.
    """
    y = target @ _LUMA
    mean = float(y.mean())
    if mean > max_luma:
        target = target * (max_luma / mean)
        y = y * (max_luma / mean)
    y_in = cv2.blur(low @ _LUMA, (9, 9))
    keep = _smoothstep(y_in, keep_lo, keep_hi)[..., None]
    target = target + keep * (low - target)
    y = target @ _LUMA
    s = _smoothstep(y_in, grey_black, grey_colour)[..., None]
    target = y[..., None] + s * (target - y[..., None])
    out = (np.clip(target, 0, 1) * 255 + 0.5).astype(np.uint8)
    if denoise > 0:
        out = cv2.fastNlMeansDenoisingColored(out, None, h=float(denoise), hColor=float(2 * denoise),
                                              templateWindowSize=7, searchWindowSize=15)
    return out


def build_targets(inputs: str | Path, out: str | Path, teachers: Sequence[str], cache_dir: str | Path, *,
                  max_luma: float = 0.42, denoise: float = 4.0, device: str = "cpu") -> int:
    """Write ``out/low`` (links) and ``out/high`` (fused, cleaned targets); returns the pictures written."""
    from PIL import Image

    from training.teachers import load_teacher

    files = list_images(inputs)
    if not files:
        raise InputError(f"no images in {inputs}")
    if not teachers:
        raise InputError("give at least one --teacher")
    caches = [TeacherCache(cache_dir, load_teacher(t), device=device) for t in teachers]
    out = Path(out)
    (out / "low").mkdir(parents=True, exist_ok=True)
    (out / "high").mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    written = 0
    for f in tqdm(files, desc="teacher targets"):
        dst = out / "high" / f"{f.stem}.png"
        link = out / "low" / f.name
        img = read_image(f)
        x = to_tensor(img)
        outs = [c.get(f, x)["out"].float().permute(1, 2, 0).numpy() for c in caches]
        if not dst.exists():
            low = img.astype(np.float32) / 255.0
            target = clean_target(low, fuse_teachers(outs), max_luma=max_luma, denoise=denoise)
            Image.fromarray(target).save(dst)
            written += 1
        if not (link.exists() or link.is_symlink()):
            link.symlink_to(f.resolve())
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data.targets", description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", required=True, help="folder of real dark pictures")
    ap.add_argument("--out", required=True, help="paired folder to write (low/ links, high/ targets)")
    ap.add_argument("--teacher", action="append", default=[], help="teacher name or weights path (repeatable)")
    ap.add_argument("--cache", default="runs/teacher_cache", help="teacher-output cache folder")
    ap.add_argument("--max-luma", type=float, default=0.42, help="upper limit of a target's mean luma")
    ap.add_argument("--denoise", type=float, default=4.0, help="non-local-means strength (0: off)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_flush_denormal(True)
    try:
        n = build_targets(args.inputs, args.out, args.teacher, args.cache, max_luma=args.max_luma,
                          denoise=args.denoise, device=args.device)
    except LowlightError as e:
        print(f"error: {e}")
        return e.exit_code
    print(f"wrote {n} targets into {args.out}/high")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
