"""Deterministic train / validation split by file stem.

Each stem is hashed with the seed (SHA-256 of ``"{seed}:{stem}"``) to a number in [0, 1); a stem is
in the validation split when that number is below ``val_fraction``. The decision depends only on
the stem and the seed, not on which other files are present or their order, so:

- the same folder always splits the same way, on every machine and every run;
- every dataset built from the same stems (the real pairs in ``DIR/low`` + ``DIR/high`` and synthetic
  pairs made from ``DIR/high``) holds out the SAME stems: pass ``exclude_stems`` or use
  :func:`is_validation_stem` so no validation picture is ever trained on.

With very few stems the hash may pick none; then the stem with the smallest hash is held out (only
when there are at least two), so a split is never empty.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from torch.utils.data import Dataset, Subset

__all__ = ["stem_hash", "is_validation_stem", "split_stems", "split_dataset"]


def stem_hash(stem: str, seed: int = 0) -> float:
    """The stem's position in [0, 1) for ``seed``."""
    digest = hashlib.sha256(f"{int(seed)}:{stem}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_validation_stem(stem: str, val_fraction: float, seed: int = 0) -> bool:
    """Whether ``stem`` belongs to the validation split (independent of the other stems)."""
    return stem_hash(stem, seed) < float(val_fraction)


def split_stems(stems: Iterable[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, val)`` stems, each in the input order; disjoint, deterministic."""
    stems = list(dict.fromkeys(stems))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    val = {s for s in stems if is_validation_stem(s, val_fraction, seed)}
    if not val and val_fraction > 0 and len(stems) >= 2:
        val = {min(stems, key=lambda s: stem_hash(s, seed))}
    return [s for s in stems if s not in val], [s for s in stems if s in val]


def split_dataset(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Splits a dataset with ``stems`` by stem into ``(train, val)``.

    Datasets of this package have ``subset(stems, augment)``: the validation part gets no crop and
    no random augmentation (and fixed synthetic noise), the training part keeps its settings. Other
    datasets with a ``stems`` list are split with :class:`torch.utils.data.Subset`.
    """
    stems = list(getattr(dataset, "stems"))
    train, val = split_stems(stems, val_fraction, seed)
    if hasattr(dataset, "subset"):
        return dataset.subset(train, augment=True), dataset.subset(val, augment=False)
    index = {s: i for i, s in enumerate(stems)}
    return Subset(dataset, [index[s] for s in train]), Subset(dataset, [index[s] for s in val])
