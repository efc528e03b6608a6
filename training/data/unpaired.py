"""Unpaired low-light pictures (no reference) for zero-reference training such as Zero-DCE."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from lowlight_rt.errors import InputError

from .base import ImageSetDataset
from .io import list_images, read_image
from .transforms import to_tensor

__all__ = ["UnpairedFolderDataset"]


class UnpairedFolderDataset(ImageSetDataset):
    """All images of a folder (optionally its sub-folders), without references.

    Args:
        root: the folder (``SICE part 1``, ``real-dark/dicm``, ...).
        recursive: include sub-folders; stems are then relative paths without extension.
        crop, flip, rotate, exclude_stems: see :class:`~training.data.base.ImageSetDataset`.

    Items: ``{"low": (3, H, W) float in [0, 1], "name": stem}``.
    """

    def __init__(self, root: str | Path, *, crop: int | None = None, flip: bool = False, rotate: bool = False,
                 recursive: bool = False, exclude_stems: Iterable[str] | None = None) -> None:
        super().__init__(crop, flip, rotate, exclude_stems)
        self.root = Path(root)
        files = list_images(self.root, recursive=recursive)
        records = [(str(f.relative_to(self.root).with_suffix("")) if recursive else f.stem, f) for f in files]
        stems = [r[0] for r in records]
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})[:3]
            raise InputError(f"several images share a stem in {self.root}: {', '.join(dup)}")
        self._finish(records)
        if not self.records:
            raise InputError(f"no images found in {self.root}")

    def paths(self, index: int) -> tuple[Path]:
        """``(path,)`` of example ``index``."""
        return (self.records[index][1],)

    def load_full(self, index: int) -> dict[str, torch.Tensor | str]:
        """Whole, un-augmented example: ``{"low", "name"}``."""
        stem, path = self.records[index]
        return {"low": to_tensor(read_image(path)), "name": stem}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.load_full(index)
        (low,) = self.transform(item["low"])
        return {"low": low, "name": item["name"]}
