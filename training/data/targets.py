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
2. **Black point**: LOL-trained teachers map what the input shows as black (no signal: a night sky, the
   unlit half of a road) to mid-grey, 40-55 of 255 on the driving clip: a hazy, flat picture that the
   student learned as it was. The target's black level (its median luma where the input has none) is
   moved down to ``black_floor`` with white kept, and the mean brightness is restored (as far as a curve
   that keeps black black can) so the picture gains contrast, not darkness.
3. **Exposure**: the fused picture's mean luma is limited to ``max_luma`` by a gain (LOL-trained
   teachers push every scene to LOL's bright indoor level; a night scene stays a night scene).
4. **Highlights kept**: where the input is already well exposed (local luma from ``keep_lo`` to
   ``keep_hi``) the target blends back to the input: lit signs and lamps are not blown out, and a
   well-lit area stays itself (the LOL teachers brighten everything to the same level).
5. **Neutral blacks**: colour is removed where the input's local luma is below what can carry colour
   (the student's own rule, :func:`lowlight_rt.models.affine.neutralize_dark_chroma` thresholds).
6. **Clean**: OpenCV's non-local-means denoiser on the target (chroma more strongly than luma): the
   teachers amplify the input's noise and codec blocks; the student must learn not to.
"""

from __future__ import annotations

import argparse
import sys
import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from lowlight_rt.errors import InputError, LowlightError, error_line

from .cache import TeacherCache
from .io import list_images, read_image
from .transforms import to_tensor

__all__ = ["fuse_teachers", "set_black_point", "clean_target", "build_targets"]

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


def set_black_point(low: np.ndarray, target: np.ndarray, *, floor: float = 0.03, dark_in: float = 0.02,
                    min_share: float = 0.01, toe: float = 0.02) -> np.ndarray:
    """Move a target's lifted black level down to ``floor``, then restore its mean luma (step 2 of the module doc).

    The black level ``b`` is the target's median luma where the input's local (9x9) luma is below ``dark_in``
    (the input carries no signal there); with under ``min_share`` of the pixels that dark the target is
    returned as it is (a foggy or evenly lit picture keeps its tones). If ``b > floor``: ``u = (t - b) / (1 - b)`` (white stays white), softened below 0
    by a toe ``toe * softplus(u / toe)``, ``t = floor + (1 - floor) u``, then ``t = t (1 + k (1 - t))`` with ``k`` in [0, 1] chosen to bring the mean luma back towards
    the original (this lift keeps 0 at 0 and has slope <= 2 there, so the new black stays black).

    Args:
        low: ``(H, W, 3) float32`` input in [0, 1].
        target: ``(H, W, 3) float32`` in [0, 1].
    Returns:
        ``(H, W, 3) float32`` in [0, 1].
    """
    y = target @ _LUMA
    dark = cv2.blur(low @ _LUMA, (9, 9)) < dark_in
    if dark.mean() < min_share:          # the input shows no black: nothing says the target's darkest is black
        return target
    b = float(np.median(y[dark]))
    if b <= floor:
        return target
    u = (target - b) / (1 - b)           # the black level at 0, white at 1
    # a soft toe (softplus, width ``toe``) rather than a clip: what was around the black level fades to
    # ``floor`` smoothly, so the codec's blotches in a dark sky do not become black / grey patches
    u = toe * np.logaddexp(0.0, u / toe)
    shifted = np.clip(floor + (1 - floor) * u, 0, 1)
    ys = shifted @ _LUMA
    room = float((ys * (1 - ys)).mean())
    k = float(np.clip((float(y.mean()) - float(ys.mean())) / room, 0, 1)) if room > 0 else 0.0
    return shifted * (1 + k * (1 - shifted))


def clean_target(low: np.ndarray, target: np.ndarray, *, max_luma: float = 0.42, grey_black: float = 0.02,
                 grey_colour: float = 0.08, keep_lo: float = 0.35, keep_hi: float = 0.7,
                 denoise: float = 4.0, black_floor: float | None = 0.03) -> np.ndarray:
    """Black point, exposure limit, kept highlights, neutral blacks and denoising of a fused target (module doc).

    ``black_floor=None`` leaves the teachers' black level as it is.

    Args:
        low: ``(H, W, 3) float32`` input in [0, 1].
        target: ``(H, W, 3) float32`` fused teacher output in [0, 1].
    Returns:
        ``(H, W, 3) uint8`` target.
    """
    if black_floor is not None:
        target = set_black_point(low, target, floor=black_floor, dark_in=grey_black)
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
                  max_luma: float = 0.42, denoise: float = 4.0, black_floor: float | None = 0.03,
                  device: str = "cpu") -> int:
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
            target = clean_target(low, fuse_teachers(outs), max_luma=max_luma, denoise=denoise,
                                  black_floor=black_floor)
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
    ap.add_argument("--black-floor", type=float, default=0.03,
                    help="target black level (0..1) the teachers' lifted blacks are moved to; negative: keep theirs")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_flush_denormal(True)
    try:
        n = build_targets(args.inputs, args.out, args.teacher, args.cache, max_luma=args.max_luma,
                          denoise=args.denoise,
                          black_floor=None if args.black_floor < 0 else args.black_floor, device=args.device)
    except LowlightError as e:
        print(error_line("python -m training.data.targets", e), file=sys.stderr)
        return e.exit_code
    print(f"wrote {n} targets into {args.out}/high")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
