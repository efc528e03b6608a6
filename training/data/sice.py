"""Under- / normal-exposure pairs derived from SICE part 1 (Zero-DCE's unpaired training set).

SICE part 1 holds multi-exposure sequences of static scenes, numbered consecutively (``2.jpg`` to
``8.jpg`` are one scene, darkest to brightest, for example), but the folder does not say where one
scene ends. This module finds the boundaries and derives one pair per scene.

Grouping heuristic (images in natural numeric order):

1. Each image becomes a 32x32 grey thumbnail (OpenCV's 1/8 reduced JPEG decode, area-resized).
2. Similarity of two thumbnails = max(Pearson correlation, Spearman rank correlation) of their
   pixels. Both ignore exposure gain and offset; the rank version also ignores the (monotonic)
   tone curve, the Pearson version is steadier on nearly black frames whose pixels tie.
3. Image ``i`` joins the current scene if its best similarity to the scene's last three members is
   at least ``same_scene`` (0.9): exposures of one static scene correlate at 0.93-1.0, and
   comparing with three members bridges an extreme exposure next to a clipped one.
4. Below ``new_scene`` (0.5) it starts a new scene. In between (ambiguous content), brightness
   decides: a drop of more than ``brightness_drop`` (0.15 in mean level) from the previous image
   means the exposure ramp restarted, so a new scene; otherwise it stays. Brightness alone is not
   used: some sequences are stored out of exposure order (bright images followed by darker ones of
   the same scene at similarity ~1.0), and those must stay together.

Pair per scene (scenes of at least two images): ``low`` = the darkest image, ``high`` = the image
whose mean level is closest to ``target_mean`` (0.45, a well-exposed picture); scenes whose darkest
image is not under-exposed (mean above ``max_low_mean``, 0.25) or where the two differ by less than
``min_gap`` (0.15) in mean level are skipped.

On the 2002 images of ``../shared/data/sice-part1`` this finds 268 scenes (the grouping matches the
README's 2-8 example) and 230 usable pairs (median scene 7 images, mean level of low 0.11 and of
high 0.45); a few long groups (up to 21) are sequences stored out of exposure order.

    python -m training.data.sice ../shared/data/sice-part1 --out runs/sice_pairs   # low/ + high/ links
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from lowlight_rt.errors import InputError

from .io import list_images

__all__ = ["ScenePair", "thumbnail", "similarity", "group_scenes", "scene_pairs", "sice_pairs", "write_pair_folders"]


@dataclass(frozen=True)
class ScenePair:
    """One derived pair: ``stem`` names the scene (``"sice_2-8"``), means are in [0, 1]."""

    stem: str
    low: Path
    high: Path
    low_mean: float
    high_mean: float
    scene: tuple[Path, ...]


def thumbnail(path: str | Path, size: int = 32) -> np.ndarray:
    """``(size, size)`` float64 grey thumbnail in [0, 1]."""
    img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if img is None:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x.ravel()
    return (x - x.mean()) / (x.std() + 1e-6)


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.argsort(np.argsort(x.ravel(), kind="stable"), kind="stable").astype(np.float64)
    return (r - r.mean()) / (r.std() + 1e-9)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """max(Pearson, Spearman) correlation of two thumbnails, in [-1, 1]."""
    return float(max(np.mean(_zscore(a) * _zscore(b)), np.mean(_ranks(a) * _ranks(b))))


def group_scenes(thumbs: Sequence[np.ndarray], *, same_scene: float = 0.9, new_scene: float = 0.5,
                 brightness_drop: float = 0.15, window: int = 3) -> list[list[int]]:
    """Splits consecutive thumbnails into scenes (lists of indices); see the module docstring."""
    if len(thumbs) == 0:
        return []
    means = [float(t.mean()) for t in thumbs]
    groups: list[list[int]] = [[0]]
    for i in range(1, len(thumbs)):
        g = groups[-1]
        sim = max(similarity(thumbs[j], thumbs[i]) for j in g[-window:])
        if sim >= same_scene:
            g.append(i)
        elif sim < new_scene or means[i] < means[g[-1]] - brightness_drop:
            groups.append([i])
        else:
            g.append(i)
    return groups


def scene_pairs(paths: Sequence[Path], groups: Sequence[Sequence[int]], means: Sequence[float], *,
                target_mean: float = 0.45, min_gap: float = 0.15, max_low_mean: float = 0.25,
                prefix: str = "sice") -> list[ScenePair]:
    """One :class:`ScenePair` per scene of two or more images whose darkest and best-exposed differ enough."""
    pairs = []
    for g in groups:
        if len(g) < 2:
            continue
        low = min(g, key=lambda i: means[i])
        high = min((i for i in g if i != low), key=lambda i: abs(means[i] - target_mean))
        if means[low] > max_low_mean or means[high] - means[low] < min_gap:
            continue
        stem = f"{prefix}_{paths[g[0]].stem}-{paths[g[-1]].stem}"
        pairs.append(ScenePair(stem, paths[low], paths[high], means[low], means[high], tuple(paths[i] for i in g)))
    return pairs


def sice_pairs(folder: str | Path, *, target_mean: float = 0.45, min_gap: float = 0.15, max_low_mean: float = 0.25,
               same_scene: float = 0.9, new_scene: float = 0.5, brightness_drop: float = 0.15) -> list[ScenePair]:
    """Groups a SICE-style folder into scenes and returns one pair per usable scene."""
    paths = list_images(folder)
    if not paths:
        raise InputError(f"no images found in {folder}")
    thumbs = [thumbnail(p) for p in paths]
    groups = group_scenes(thumbs, same_scene=same_scene, new_scene=new_scene, brightness_drop=brightness_drop)
    return scene_pairs(paths, groups, [float(t.mean()) for t in thumbs], target_mean=target_mean, min_gap=min_gap,
                       max_low_mean=max_low_mean)


def write_pair_folders(pairs: Sequence[ScenePair], out_dir: str | Path, link: bool = True) -> Path:
    """Writes ``out_dir/low`` and ``out_dir/high`` (symlinks, or copies) plus ``pairs.json``."""
    import shutil

    out = Path(out_dir)
    for sub in ("low", "high"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        for sub, src in (("low", p.low), ("high", p.high)):
            dst = out / sub / f"{p.stem}{src.suffix.lower()}"
            if dst.exists() or dst.is_symlink():
                dst.unlink()
            if link:
                os.symlink(src.resolve(), dst)
            else:
                shutil.copy2(src, dst)
    index = [{"stem": p.stem, "low": str(p.low), "high": str(p.high), "low_mean": round(p.low_mean, 4),
              "high_mean": round(p.high_mean, 4), "scene": [x.name for x in p.scene]} for p in pairs]
    (out / "pairs.json").write_text(json.dumps(index, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m training.data.sice FOLDER [--out DIR] [--copy]``: print the grouping, optionally write pairs."""
    ap = argparse.ArgumentParser(prog="python -m training.data.sice", description="Derive exposure pairs from SICE part 1.")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write DIR/low and DIR/high (symlinks) and pairs.json")
    ap.add_argument("--copy", action="store_true", help="copy the files instead of linking")
    ap.add_argument("--target-mean", type=float, default=0.45)
    args = ap.parse_args(argv)
    pairs = sice_pairs(args.folder, target_mean=args.target_mean)
    sizes = [len(p.scene) for p in pairs]
    print(f"{len(pairs)} pairs from {sum(sizes)} images in scenes of {min(sizes, default=0)}-{max(sizes, default=0)} "
          f"(median {int(np.median(sizes)) if sizes else 0}); low mean {np.mean([p.low_mean for p in pairs]):.3f}, "
          f"high mean {np.mean([p.high_mean for p in pairs]):.3f}")
    if args.out:
        write_pair_folders(pairs, args.out, link=not args.copy)
        print(f"wrote {args.out}/low, {args.out}/high, {args.out}/pairs.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
