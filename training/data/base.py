"""Shared behaviour of the folder datasets: stems, crop / augmentation settings, stem subsets."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Sequence

from torch.utils.data import Dataset

from .transforms import PairTransform

__all__ = ["ImageSetDataset"]


class ImageSetDataset(Dataset):
    """Base of the datasets here: one record per picture (or pair), identified by a unique stem.

    Subclasses fill ``self.records`` (each a tuple whose first element is the stem) and implement
    ``__getitem__`` returning a dict of ``(3, H, W)`` float tensors in [0, 1] plus ``"name"``.

    Args:
        crop: random-crop side (``None``: whole pictures); change it with :meth:`set_crop`.
        flip, rotate: random mirroring / quarter turns, identical for all pictures of an example.
        exclude_stems: stems never to use (e.g. another dataset's validation split).
    """

    def __init__(self, crop: int | None = None, flip: bool = False, rotate: bool = False,
                 exclude_stems: Iterable[str] | None = None) -> None:
        self.transform = PairTransform(crop, flip=flip, rotate=rotate)
        self.exclude_stems = frozenset(exclude_stems or ())
        self.records: list[tuple[Any, ...]] = []
        self.evaluation = False  # set on validation subsets: no randomness at all

    def _finish(self, records: Sequence[tuple[Any, ...]]) -> None:
        self.records = [r for r in records if r[0] not in self.exclude_stems]

    @property
    def stems(self) -> list[str]:
        """Unique identifiers of the examples, in dataset order."""
        return [r[0] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def set_crop(self, crop: int | None) -> None:
        """Crop side for the following examples (resolution-progressive training)."""
        if not self.evaluation:
            self.transform.set_crop(crop)

    def subset(self, stems: Iterable[str], augment: bool = True) -> "ImageSetDataset":
        """A copy restricted to ``stems`` (kept in dataset order).

        With ``augment=False`` the copy is for evaluation: whole pictures, no flips or rotations,
        and (for synthetic pairs) the same noise on every pass.
        """
        keep = set(stems)
        new = copy.copy(self)
        new.records = [r for r in self.records if r[0] in keep]
        new.transform = copy.copy(self.transform)
        if not augment:
            new.transform = PairTransform(None, flip=False, rotate=False)
            new.evaluation = True
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} examples, {self.transform!r})"
