"""Training / validation datasets from a preset's ``data:`` section, via :mod:`training.data`.

``data.sources`` lists the training sets (concatenated); each is ``{kind, root, repeat, **options}``
passed to :func:`training.data.build_dataset`. ``root`` may use ``{data}`` for the ``--data`` folder
(the default root is ``{data}`` itself). Every item is normalised to a dict with ``input``
``(3, H, W)`` in [0, 1] and, for paired data, ``target``. The validation set is ``--val`` (paired,
full images) or a held-out split of the first source (``val_fraction``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset

from lowlight_rt.errors import InputError

log = logging.getLogger("training")

_INPUT_KEYS = ("input", "low", "lq")
_TARGET_KEYS = ("target", "high", "gt")


class Normalised(Dataset):
    """Wrap a :mod:`training.data` dataset so every item is ``{"input", ["target"], ...}``."""

    def __init__(self, dataset: Dataset, repeat: int = 1) -> None:
        self.dataset = dataset
        self.repeat = max(1, int(repeat))

    def __len__(self) -> int:
        return len(self.dataset) * self.repeat

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index % len(self.dataset)]
        if isinstance(item, dict):
            out = {k: v for k, v in item.items() if isinstance(v, torch.Tensor)}
            for key in _INPUT_KEYS:
                if key in out:
                    out["input"] = out.pop(key) if key != "input" else out["input"]
                    break
            for key in _TARGET_KEYS:
                if key in out:
                    out["target"] = out.pop(key) if key != "target" else out["target"]
                    break
        elif isinstance(item, (tuple, list)):
            out = {"input": item[0]}
            if len(item) > 1 and isinstance(item[1], torch.Tensor):
                out["target"] = item[1]
        else:
            out = {"input": item}
        if "input" not in out:
            raise InputError(f"dataset {type(self.dataset).__name__} yields no input image")
        return out


def set_crop(dataset: Dataset, crop: int) -> None:
    """Change the random-crop size of every dataset inside ``dataset`` (progressive schedule)."""
    if isinstance(dataset, ConcatDataset):
        for d in dataset.datasets:
            set_crop(d, crop)
    elif isinstance(dataset, Normalised):
        set_crop(dataset.dataset, crop)
    elif hasattr(dataset, "set_crop"):
        dataset.set_crop(crop)
    elif hasattr(dataset, "dataset"):
        set_crop(dataset.dataset, crop)


def _root(value: str | None, data: str) -> str:
    return data if value in (None, "", "{data}") else str(value).replace("{data}", data)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items into a batch. A key only some items have (a cached teacher output in a
    batch mixing cached and synthetic examples) is stacked with zeros where missing, and
    ``"<key>__mask"`` ``(B,)`` bool says which rows are real."""
    keys = {k for it in items for k, v in it.items() if isinstance(v, torch.Tensor)}
    batch: dict[str, Any] = {}
    for key in keys:
        present = [key in it for it in items]
        if all(present):
            batch[key] = torch.stack([it[key] for it in items])
            continue
        ref = next(it[key] for it in items if key in it)
        batch[key] = torch.stack([it[key] if key in it else torch.zeros_like(ref) for it in items])
        batch[f"{key}__mask"] = torch.tensor(present)
    return batch


def _cached(ds: Dataset, teachers: list[Any], cache_dir: str, device: Any) -> Dataset:
    """Wrap a folder dataset with the cached outputs of the teachers marked ``cache``."""
    from training.data.cache import CachedTeacherDataset, TeacherCache

    for t in teachers:
        if not t.extra.get("cache"):
            continue
        if not all(hasattr(ds, a) for a in ("load_full", "paths", "transform")):
            continue          # synthetic pairs change every pass: their teacher output is computed live
        cache = TeacherCache(cache_dir, t.model, device=device, pad_multiple=max(8, t.model.size_multiple))
        ds = CachedTeacherDataset(ds, cache, output_key=t.output_key, feats_key=None)
    return ds


def build_datasets(dcfg: dict[str, Any], *, data: str, val: str | None, seed: int, needs_target: bool,
                   teachers: list[Any] | None = None, cache_dir: str | None = None, device: Any = "cpu",
                   precompute: bool = True) -> tuple[Dataset, Dataset | None, dict[str, Any]]:
    """``(train_set, val_set, description)`` for the trainer. ``description`` goes into checkpoint metadata.

    Teachers with ``cache: true`` get their outputs from :class:`training.data.cache.TeacherCache`
    (computed once per training image into ``cache_dir``; ``precompute`` fills it now).
    """
    from training.data import build_dataset, split_dataset

    sources = list(dcfg.get("sources") or [{"kind": "paired"}])
    crop = int(dcfg.get("crop", 128))
    augment = dict(dcfg.get("augment") or {})
    parts: list[Dataset] = []
    described = []
    val_set = None
    val_stems: list[str] = []
    for i, spec in enumerate(sources):
        spec = dict(spec)
        kind = spec.pop("kind", "paired")
        repeat = int(spec.pop("repeat", 1))
        root = _root(spec.pop("root", None), data)
        options = {"crop": crop, **augment, **spec}
        if val_stems:   # e.g. synthetic pairs from DATA/high must not see the held-out references
            options["exclude_stems"] = sorted(set(options.get("exclude_stems") or ()) | set(val_stems))
        ds = build_dataset(kind, root=root, **options)
        if i == 0 and val is None and float(dcfg.get("val_fraction", 0.1)) > 0:
            ds, held = split_dataset(ds, float(dcfg.get("val_fraction", 0.1)), seed=seed)
            val_set = held
            val_stems = list(getattr(held, "stems", []))
        if needs_target and kind in ("unpaired",):
            raise InputError(f"the loss needs ground truth but data source {i} ({kind}) has none")
        if teachers and cache_dir:
            ds = _cached(ds, teachers, cache_dir, device)
            if precompute and hasattr(ds, "cache"):
                inner = ds
                while hasattr(inner, "cache"):
                    inner.cache.precompute(inner.dataset, progress=False)
                    inner = inner.dataset
        parts.append(Normalised(ds, repeat))
        described.append({"kind": kind, "root": root, "repeat": repeat, "images": len(ds)})
    train_set: Dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    if val is not None:
        val_set = build_dataset("paired", root=str(val), crop=None)
    if val_set is not None:
        val_set = Normalised(val_set)
        limit = dcfg.get("val_max_images")
        if limit:
            val_set = torch.utils.data.Subset(val_set, range(min(int(limit), len(val_set))))
    if len(train_set) == 0:
        raise InputError(f"no training images found in {data}")
    return train_set, val_set, {"sources": described, "val": val or "split", "val_stems": val_stems,
                                "val_images": len(val_set) if val_set is not None else 0}
