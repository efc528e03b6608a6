"""Paired folders: ``low/`` and ``high/`` matched by file stem (LOL our485 / eval15, ir-rgb).

``low/12.webp`` pairs with ``high/12.png``: extensions may differ (png, jpg, jpeg, webp, bmp, tif).
Files without a partner are reported (a warning naming the first few, counts in ``unmatched_low`` /
``unmatched_high``); ``strict=True`` makes them an error instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from lowlight_rt.errors import InputError

from .base import ImageSetDataset
from .io import list_images, read_image
from .transforms import to_tensor

log = logging.getLogger("training.data")

__all__ = ["PairedFolderDataset", "match_pairs"]


def _by_stem(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise InputError(f"two images with stem {f.stem!r} in {folder}: {out[f.stem].name}, {f.name}")
        out[f.stem] = f
    return out


def _names(stems: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(stems)[:limit])
    return shown + (f" (+{len(stems) - limit} more)" if len(stems) > limit else "")


def match_pairs(low_dir: str | Path, high_dir: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """``(pairs, unmatched_low, unmatched_high)``; pairs are ``(stem, low_path, high_path)`` in natural order."""
    low_dir, high_dir = Path(low_dir), Path(high_dir)
    lows = _by_stem(list_images(low_dir), low_dir)
    highs = _by_stem(list_images(high_dir), high_dir)
    pairs = [(s, p, highs[s]) for s, p in lows.items() if s in highs]
    return pairs, [s for s in lows if s not in highs], [s for s in highs if s not in lows]


class PairedFolderDataset(ImageSetDataset):
    """Low-light / reference pairs from two folders, matched by file stem.

    Args:
        root: a folder holding ``low/`` and ``high/``, or a ``(low_dir, high_dir)`` pair.
        low_dir, high_dir: the two folders explicitly (instead of ``root``).
        crop, flip, rotate, exclude_stems: see :class:`~training.data.base.ImageSetDataset`.
        strict: unmatched files raise :class:`InputError` instead of a warning.
        pairs: explicit ``[(stem, low_path, high_path)]`` instead of folders (see ``from_pairs``).

    Items: ``{"low": (3, H, W), "high": (3, H, W)}`` float in [0, 1] (the same crop and
    augmentation for both) and ``"name"`` (the stem).
    """

    def __init__(self, root: str | Path | tuple[str | Path, str | Path] | None = None, *,
                 low_dir: str | Path | None = None, high_dir: str | Path | None = None,
                 crop: int | None = None, flip: bool = False, rotate: bool = False,
                 exclude_stems: Iterable[str] | None = None, strict: bool = False,
                 pairs: Sequence[tuple[str, str | Path, str | Path]] | None = None) -> None:
        super().__init__(crop, flip, rotate, exclude_stems)
        self.unmatched_low: list[str] = []
        self.unmatched_high: list[str] = []
        if pairs is not None:
            records = [(str(s), Path(lo), Path(hi)) for s, lo, hi in pairs]
            self.source = "explicit pairs"
        else:
            if isinstance(root, (tuple, list)):
                low_dir, high_dir = root
            elif root is not None:
                low_dir, high_dir = Path(root) / "low", Path(root) / "high"
            if low_dir is None or high_dir is None:
                raise InputError("paired data needs a folder with low/ and high/, or both low_dir and high_dir")
            for d in (low_dir, high_dir):
                if not Path(d).is_dir():
                    raise InputError(f"paired data folder not found: {d} (expected low/ and high/ matched by file stem)")
            records, self.unmatched_low, self.unmatched_high = match_pairs(low_dir, high_dir)
            self.source = f"{low_dir} + {high_dir}"
            if self.unmatched_low or self.unmatched_high:
                msg = (f"{len(self.unmatched_low)} low image(s) without a reference"
                       f"{': ' + _names(self.unmatched_low) if self.unmatched_low else ''}; "
                       f"{len(self.unmatched_high)} reference(s) without a low image"
                       f"{': ' + _names(self.unmatched_high) if self.unmatched_high else ''} ({self.source})")
                if strict:
                    raise InputError("unmatched files: " + msg)
                log.warning("unmatched files skipped: %s", msg)
        self._finish(records)
        if not self.records:
            raise InputError(f"no image pairs found in {self.source}")

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str | Path, str | Path]], **kwargs) -> "PairedFolderDataset":
        """A dataset over explicit ``(stem, low_path, high_path)`` records."""
        return cls(pairs=pairs, **kwargs)

    def paths(self, index: int) -> tuple[Path, Path]:
        """``(low_path, high_path)`` of example ``index``."""
        _, lo, hi = self.records[index]
        return lo, hi

    def load_pair(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """``(stem, low, high)`` as full-size ``(H, W, 3) uint8 RGB`` arrays, without augmentation."""
        stem, lo, hi = self.records[index]
        low, high = read_image(lo), read_image(hi)
        if low.shape != high.shape:
            raise InputError(f"pair {stem!r} differs in size: {lo.name} is {low.shape[1]}x{low.shape[0]}, "
                             f"{hi.name} is {high.shape[1]}x{high.shape[0]}")
        return stem, low, high

    def load_full(self, index: int) -> dict[str, torch.Tensor | str]:
        """Whole, un-augmented example: ``{"low", "high", "name"}``."""
        stem, low, high = self.load_pair(index)
        return {"low": to_tensor(low), "high": to_tensor(high), "name": stem}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.load_full(index)
        low, high = self.transform(item["low"], item["high"])
        return {"low": low, "high": high, "name": item["name"]}
