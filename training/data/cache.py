"""Teacher-output cache: run a frozen teacher once per training image, crop its output with the pair.

A frozen teacher's output for an image never changes, and a large teacher (MIRNet-v2 at its
published width: ~42 s per 600x400 image on a 2-core CPU) is far too slow to run per batch. The
cache runs it once per image at FULL image resolution, stores the output (and optionally its
intermediate features) as fp16 tensors on disk, and :class:`CachedTeacherDataset` then takes the
random crop / flips / rotation of ``(low, high, teacher_out[, feats])`` together.

Cache files live under ``cache_dir/<teacher_id>/`` and are keyed by the image file's absolute path
(plus its size and modification time, so an edited image is recomputed) and the teacher id (by
default a fingerprint of the teacher's class, config and weights, so a retrained teacher never
reuses stale outputs). Writes are atomic (temp file + rename), so DataLoader workers and DDP ranks
can share a cache directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .transforms import PairTransform, apply_augment

__all__ = ["TeacherCache", "CachedTeacherDataset", "teacher_fingerprint"]


def teacher_fingerprint(model: nn.Module) -> str:
    """``<class>-<12 hex>``: a hash of the class name, its ``config`` (if any) and all weights."""
    h = hashlib.sha1(type(model).__name__.encode())
    h.update(repr(sorted((getattr(model, "config", None) or {}).items())).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes() if t.dtype != torch.bfloat16
                 else t.detach().float().cpu().numpy().tobytes())
    return f"{type(model).__name__.lower()}-{h.hexdigest()[:12]}"


class TeacherCache:
    """Computes and stores a frozen teacher's full-resolution outputs, one file per image.

    Args:
        cache_dir: root folder of the cache.
        teacher: the frozen teacher: ``forward(x)`` ``(1, 3, H, W)`` -> ``(1, 3, H, W)`` in [0, 1];
            with ``with_features`` also ``forward_features(x) -> (out, [features])``.
        teacher_id: name of the teacher in the key (default: :func:`teacher_fingerprint`).
        device: where the teacher runs.
        with_features: also store the teacher's features (fp16, at their own resolution).
        pad_multiple: inputs are reflect-padded to a multiple of this (the teacher's down-sampling
            factor) and outputs cropped back.

    ``hits`` / ``misses`` count loads from disk and teacher runs.
    """

    def __init__(self, cache_dir: str | Path, teacher: nn.Module, teacher_id: str | None = None, *,
                 device: str | torch.device = "cpu", with_features: bool = False, pad_multiple: int = 8) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher_id = teacher_id or teacher_fingerprint(teacher)
        self.dir = Path(cache_dir) / re.sub(r"[^A-Za-z0-9._-]+", "_", self.teacher_id)
        self.device = torch.device(device)
        self.with_features = with_features
        self.pad_multiple = max(1, int(pad_multiple))
        self.hits = 0
        self.misses = 0

    def key(self, path: str | Path) -> str:
        """Hex key of an image file for this teacher (absolute path, size, mtime, teacher id)."""
        p = Path(path).resolve()
        st = p.stat()
        text = f"{self.teacher_id}|{p}|{st.st_size}|{st.st_mtime_ns}|feats={int(self.with_features)}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def file(self, path: str | Path) -> Path:
        """Cache file of an image."""
        k = self.key(path)
        return self.dir / k[:2] / f"{k}.pt"

    @torch.no_grad()
    def _run(self, image: torch.Tensor) -> dict[str, Any]:
        h, w = image.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        x = image.unsqueeze(0).to(self.device, torch.float32)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        self.teacher.to(self.device)
        if self.with_features:
            y, feats = self.teacher.forward_features(x)
        else:
            y, feats = self.teacher(x), []
        entry: dict[str, Any] = {"teacher_id": self.teacher_id, "height": int(h), "width": int(w),
                                 "out": y[0, :, :h, :w].clamp(0, 1).to("cpu", torch.float16).contiguous()}
        if self.with_features:
            stored, strides = [], []
            for f in feats:
                s = max(1, round(x.shape[-1] / f.shape[-1]))
                stored.append(f[0, :, : -(-h // s), : -(-w // s)].to("cpu", torch.float16).contiguous())
                strides.append(int(s))
            entry["feats"], entry["strides"] = stored, strides
        return entry

    def _save(self, target: Path, entry: dict[str, Any]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=target.parent)
        os.close(fd)
        try:
            torch.save(entry, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, path: str | Path, image: torch.Tensor) -> dict[str, Any]:
        """The teacher's entry for the image at ``path`` whose pixels are ``image`` ``(3, H, W)`` in [0, 1].

        Returns ``{"out": (3, H, W) float16, ["feats": [(C, h, w) float16], "strides": [int]]}``; computed
        and stored on the first request, read from disk afterwards.
        """
        target = self.file(path)
        if target.is_file():
            try:
                entry = torch.load(target, map_location="cpu", weights_only=True)
                if entry.get("teacher_id") == self.teacher_id and tuple(entry["out"].shape[-2:]) == tuple(image.shape[-2:]):
                    self.hits += 1
                    return entry
            except Exception:  # noqa: BLE001 - a damaged cache file is recomputed
                pass
        entry = self._run(image)
        self._save(target, entry)
        self.misses += 1
        return entry

    def precompute(self, dataset: Dataset, progress: bool = True) -> int:
        """Fills the cache for every example of a dataset with ``load_full`` / ``paths``; returns teacher runs."""
        from tqdm import tqdm

        before = self.misses
        for i in tqdm(range(len(dataset)), desc=f"teacher cache {self.teacher_id}", disable=not progress):
            self.get(dataset.paths(i)[0], dataset.load_full(i)["low"])
        return self.misses - before


class CachedTeacherDataset(Dataset):
    """Adds a cached teacher output (and features) to each example, cropped together with it.

    Args:
        dataset: a :class:`~training.data.PairedFolderDataset` or
            :class:`~training.data.UnpairedFolderDataset` (anything with ``load_full``, ``paths``
            and a ``transform``). Synthetic pairs change every pass and cannot be cached.
        cache: the :class:`TeacherCache`.
        output_key: batch key of the teacher output (the trainer's ``output_key``).
        feats_key: batch key of the feature list, or ``None`` to leave features out.
        precompute: run the teacher over the whole dataset now (in this process), so DataLoader
            workers only read files.

    Items: the dataset's keys plus ``output_key`` ``(3, H, W)`` float in [0, 1] and, with
    ``feats_key``, a list of ``(C, h, w)`` float features cropped at their own resolution.
    """

    def __init__(self, dataset: Dataset, cache: TeacherCache, output_key: str = "teacher",
                 feats_key: str | None = None, precompute: bool = False) -> None:
        for attr in ("load_full", "paths", "transform"):
            if not hasattr(dataset, attr):
                raise TypeError(f"{type(dataset).__name__} has no {attr}(); only folder datasets can be cached")
        if feats_key is not None and not cache.with_features:
            raise ValueError("feats_key given but the cache was built without with_features=True")
        self.dataset = dataset
        self.cache = cache
        self.output_key = output_key
        self.feats_key = feats_key
        if precompute:
            cache.precompute(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def stems(self) -> list[str]:
        return self.dataset.stems

    @property
    def transform(self) -> PairTransform:
        """The wrapped dataset's augmentation (crop size, flips, rotations)."""
        return self.dataset.transform

    def paths(self, index: int) -> tuple:
        return self.dataset.paths(index)

    def set_crop(self, crop: int | None) -> None:
        self.dataset.set_crop(crop)

    def subset(self, stems: Iterable[str], augment: bool = True) -> "CachedTeacherDataset":
        return CachedTeacherDataset(self.dataset.subset(stems, augment), self.cache, self.output_key, self.feats_key)

    def _full(self, index: int) -> tuple[dict[str, Any], dict[str, tuple[list[torch.Tensor], list[int]]]]:
        """Whole example with every (nested) teacher output, and the features to crop per key."""
        if isinstance(self.dataset, CachedTeacherDataset):
            item, feats = self.dataset._full(index)
        else:
            item, feats = dict(self.dataset.load_full(index)), {}
        entry = self.cache.get(self.dataset.paths(index)[0], item["low"])
        item[self.output_key] = entry["out"].float()
        if self.feats_key:
            feats[self.feats_key] = ([f.float() for f in entry["feats"]], list(entry["strides"]))
        return item, feats

    def load_full(self, index: int) -> dict[str, Any]:
        """Whole, un-augmented example including the teacher output(s) (lets caches be stacked)."""
        return self._full(index)[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item, feats = self._full(index)
        tf: PairTransform = self.dataset.transform
        align = max([1, *(s for _, strides in feats.values() for s in strides)])
        sampler = PairTransform(tf.crop, flip=tf.flip, rotate=tf.rotate, align=align)
        h, w = item["low"].shape[-2:]
        p = sampler.sample(int(h), int(w))
        out = {k: (apply_augment(v, p) if isinstance(v, torch.Tensor) else v) for k, v in item.items()}
        for key, (maps, strides) in feats.items():
            out[key] = [apply_augment(f, p, scale=s) for f, s in zip(maps, strides)]
        return out
