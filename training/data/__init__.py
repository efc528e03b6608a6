"""Training data: paired / unpaired folders, synthetic pairs, SICE pairs, augmentation, schedules, caches.

Every dataset returns dicts of ``(3, H, W)`` float tensors in [0, 1]: ``{"low", "high" (if paired),
"name"}``. :func:`build_dataset` builds one from a preset's ``data.sources`` entry::

    build_dataset("paired", root="DIR", crop=128, flip=True, rotate=True)
    build_dataset("synthetic", root="DIR/high", crop=128, exposure_range=[0.02, 0.3])
    build_dataset("unpaired", root="../shared/data/real-dark/dicm")
    build_dataset("sice", root="../shared/data/sice-part1", crop=256)
"""

from __future__ import annotations

import inspect
from typing import Any

from lowlight_rt.errors import InputError

from .base import ImageSetDataset
from .cache import CachedTeacherDataset, TeacherCache, teacher_fingerprint
from .io import IMAGE_EXTENSIONS, list_images, read_image
from .paired import PairedFolderDataset, match_pairs
from .progressive import ProgressiveSchedule, Stage
from .splits import is_validation_stem, split_dataset, split_stems
from .synthetic import SyntheticPairDataset
from .transforms import AugmentParams, PairTransform, apply_augment, to_tensor
from .unpaired import UnpairedFolderDataset

__all__ = [
    "AugmentParams", "CachedTeacherDataset", "IMAGE_EXTENSIONS", "ImageSetDataset", "PairTransform",
    "PairedFolderDataset", "ProgressiveSchedule", "Stage", "SyntheticPairDataset", "TeacherCache",
    "UnpairedFolderDataset", "DATASET_KINDS", "apply_augment", "build_dataset",
    "is_validation_stem", "list_images", "match_pairs", "read_image", "split_dataset",
    "split_stems", "teacher_fingerprint", "to_tensor",
]


def _sice(root: str, *, target_mean: float = 0.45, min_gap: float = 0.15, max_low_mean: float = 0.25,
          **kwargs: Any) -> PairedFolderDataset:
    """Pairs derived from a SICE-style folder (see :mod:`training.data.sice`)."""
    from .sice import sice_pairs  # imported lazily: `python -m training.data.sice` runs that module

    pairs = sice_pairs(root, target_mean=target_mean, min_gap=min_gap, max_low_mean=max_low_mean)
    if not pairs:
        raise InputError(f"no exposure pairs could be derived from {root}")
    return PairedFolderDataset.from_pairs([(p.stem, p.low, p.high) for p in pairs], **kwargs)


DATASET_KINDS = {
    "paired": PairedFolderDataset,
    "unpaired": UnpairedFolderDataset,
    "synthetic": SyntheticPairDataset,
    "sice": _sice,
}


def build_dataset(kind: str, **cfg: Any) -> ImageSetDataset:
    """Builds a dataset of ``kind`` (paired, unpaired, synthetic, sice) from preset keys.

    ``cfg`` holds the constructor's keyword arguments (``root``, ``crop``, ``flip``, ``rotate``, ...);
    ``augment: {flip, rotate}`` is accepted as a nested form. Unknown keys raise :class:`InputError`.
    """
    if kind not in DATASET_KINDS:
        raise InputError(f"unknown dataset kind {kind!r} (choose from {', '.join(DATASET_KINDS)})")
    cfg = dict(cfg)
    cfg.update(cfg.pop("augment", None) or {})
    if "exposure_range" in cfg and cfg["exposure_range"] is not None:
        cfg["exposure_range"] = tuple(float(v) for v in cfg["exposure_range"])
    if kind == "paired" and isinstance(cfg.get("root"), list):
        cfg["root"] = tuple(cfg["root"])
    root = cfg.pop("root", None)
    factory = DATASET_KINDS[kind]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()) or kind == "sice":
        allowed = set(params) | (set(inspect.signature(PairedFolderDataset).parameters) if kind == "sice" else set())
        unknown = sorted(set(cfg) - allowed - {"root", "pairs"})
        if unknown:
            raise InputError(f"unknown option(s) for {kind} data: {', '.join(unknown)}")
    return factory(root, **cfg)
