"""Build the realtime student's data folders from ``../shared/data`` (symlinks, nothing copied).

    python -m training.data.layout --shared ../shared/data --out runs/data

Writes, under ``--out``:

=========================  =========================================================================
``pairs/{low,high}``       SICE training scenes: EVERY under-exposed image of a scene (mean level below
                           ``min(0.3, normal - 0.12)``) paired with the scene's normal exposure; stem
                           ``<scene>_<image>``
``identity/{low,high}``    well-exposed pictures mapped to themselves (the normal SICE exposures of the
                           training scenes, the training split of ``ir-rgb/high``): when NOT to brighten
``well_lit/``              the same well-lit pictures, darkened on the fly by the synthetic source
``irrgb_pairs/{low,high}`` the ``ir-rgb`` training split's real pairs (dark shots carry the sensor's IR
                           cast; a preset weighs them low so the student does not learn one camera)
``frames/``                real night-video frames (every ``--frame-step``-th frame of each clip except
                           the held-out one), inputs for teacher targets
``val/sice/{low,high}``    held-out SICE scenes (15 %, seed 0): darkest -> normal (the 32 pairs of
                           every earlier report)
``val/sice_normal/``       their normal exposures (well-lit input must stay itself)
``val/irrgb/{low,high}``   ir-rgb validation split (10 %, seed 0)
``val/synthetic/{low,high}``  fixed-seed synthetic pairs (PNG) from the held-out references, a third
                           of them through the H.264 night-video stage
``val/all/{low,high}``     the three paired validation sets together (training's ``--val``: the best
                           checkpoint is the best on all of them, not on SICE alone)
=========================  =========================================================================

The held-out clip (``--val-clip``, default the static yard clip) is never sampled. Scenes are split by
the scene stem, so no exposure of a validation scene is ever trained on. Re-running is cheap and
idempotent (existing links and frames are kept).
"""

from __future__ import annotations

import argparse
import sys
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from lowlight_rt.errors import InputError, error_line

from .io import list_images, read_image
from .sice import group_scenes, thumbnail
from .splits import is_validation_stem

__all__ = ["build_layout", "VAL_CLIP"]

#: the static-camera clip held out entirely for validation and flicker
VAL_CLIP = "ken2190_night_yard_1080p"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        return
    os.symlink(src.resolve(), dst)


def _sice(root: Path, out: Path) -> dict[str, int]:
    paths = list_images(root)
    if not paths:
        raise InputError(f"no images in {root}")
    thumbs = [thumbnail(p) for p in paths]
    means = [float(t.mean()) for t in thumbs]
    counts = dict(train_pairs=0, val_pairs=0, identity=0, scenes=0)
    index = []
    for g in group_scenes(thumbs):
        if len(g) < 2:
            continue
        low = min(g, key=lambda i: means[i])
        high = min((i for i in g if i != low), key=lambda i: abs(means[i] - 0.45))
        if means[low] > 0.25 or means[high] - means[low] < 0.15:
            continue
        scene = f"sice_{paths[g[0]].stem}-{paths[g[-1]].stem}"
        hi = paths[high]
        counts["scenes"] += 1
        if is_validation_stem(scene, 0.15, seed=0):
            _link(paths[low], out / "val/sice/low" / f"{scene}{paths[low].suffix}")
            _link(hi, out / "val/sice/high" / f"{scene}{hi.suffix}")
            _link(hi, out / "val/sice_normal" / f"{scene}{hi.suffix}")
            counts["val_pairs"] += 1
            continue
        limit = min(0.3, means[high] - 0.12)
        for i in g:
            if i != high and means[i] < limit:
                stem = f"{scene}_{paths[i].stem}"
                _link(paths[i], out / "pairs/low" / f"{stem}{paths[i].suffix}")
                _link(hi, out / "pairs/high" / f"{stem}{hi.suffix}")
                index.append({"stem": stem, "low_mean": round(means[i], 4), "high_mean": round(means[high], 4)})
                counts["train_pairs"] += 1
        for sub in ("identity/low", "identity/high", "well_lit"):
            _link(hi, out / sub / f"{scene}{hi.suffix}")
        counts["identity"] += 1
    (out / "pairs.json").write_text(json.dumps(index, indent=0))
    return counts


def _irrgb(root: Path, out: Path) -> dict[str, int]:
    highs = list_images(root / "high")
    lows = {p.stem: p for p in list_images(root / "low")}
    n_val = n_train = 0
    for h in highs:
        if is_validation_stem(h.stem, 0.1, seed=0):
            if h.stem in lows:
                _link(lows[h.stem], out / "val/irrgb/low" / f"irrgb_{h.name}")
                _link(h, out / "val/irrgb/high" / f"irrgb_{h.name}")
                n_val += 1
        else:
            for sub in ("identity/low", "identity/high", "well_lit"):
                _link(h, out / sub / f"irrgb_{h.name}")
            if h.stem in lows:
                _link(lows[h.stem], out / "irrgb_pairs/low" / f"irrgb_{h.name}")
                _link(h, out / "irrgb_pairs/high" / f"irrgb_{h.name}")
            n_train += 1
    return dict(irrgb_val=n_val, irrgb_well_lit=n_train)


def _frames(video_dir: Path, out: Path, step: int, val_clip: str) -> dict[str, int]:
    import av
    from PIL import Image

    counts = {}
    for clip in sorted(video_dir.glob("*.mp4")):
        if clip.stem == val_clip:
            continue
        n = 0
        with av.open(str(clip)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if i % step:
                    continue
                dst = out / "frames" / f"{clip.stem}_{i:05d}.png"
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(frame.to_ndarray(format="rgb24")).save(dst)
                n += 1
        counts[clip.stem] = n
    return counts


def _synthetic_val(out: Path, seed: int = 1234) -> int:
    from PIL import Image

    from lowlight_rt.synth import sample_params, simulate_low_light

    refs = sorted(list_images(out / "val/sice/high")) + sorted(list_images(out / "val/irrgb/high"))
    rng = np.random.default_rng(seed)
    n = 0
    for k, ref in enumerate(refs):
        img = read_image(ref)
        p = sample_params(rng, video_share=1.0 if k % 3 == 0 else 0.0)
        dst_low = out / "val/synthetic/low" / f"{ref.stem}.png"
        if not dst_low.exists():
            low = simulate_low_light(img, p, rng=rng)
            dst_low.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(low).save(dst_low)
        _link(ref, out / "val/synthetic/high" / f"{ref.stem}{ref.suffix}")
        n += 1
    return n


def build_layout(shared: str | Path, out: str | Path, *, frame_step: int = 6, val_clip: str = VAL_CLIP) -> dict:
    """Build every folder listed in the module doc; returns the counts."""
    shared, out = Path(shared), Path(out)
    for sub in ("sice-part1", "ir-rgb", "video"):
        if not (shared / sub).is_dir():
            raise InputError(f"{shared / sub} is missing (expected ../shared/data)")
    counts = {**_sice(shared / "sice-part1", out), **_irrgb(shared / "ir-rgb", out)}
    counts["frames"] = _frames(shared / "video", out, frame_step, val_clip)
    counts["synthetic_val"] = _synthetic_val(out)
    for name in ("sice", "irrgb", "synthetic"):
        for side in ("low", "high"):
            for f in list_images(out / "val" / name / side):
                _link(f.resolve(), out / "val/all" / side / f"{name}_{f.name}")
    (out / "layout.json").write_text(json.dumps(counts, indent=1))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.data.layout", description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default="../shared/data", help="the shared data folder")
    ap.add_argument("--out", default="runs/data", help="where to write the folders")
    ap.add_argument("--frame-step", type=int, default=6, help="sample every N-th video frame")
    ap.add_argument("--val-clip", default=VAL_CLIP, help="clip (stem) held out of training")
    args = ap.parse_args(argv)
    try:
        print(json.dumps(build_layout(args.shared, args.out, frame_step=args.frame_step, val_clip=args.val_clip), indent=1))
    except InputError as e:
        print(error_line("python -m training.data.layout", e), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
