"""Synthetic pairs: well-lit pictures darkened on the fly by :mod:`lowlight_rt.synth`.

The reference is the (cropped, augmented) well-lit picture; the input is the same crop through the
physically-motivated low-light model (linearise, exposure 0.02-0.3, Poisson-Gaussian noise, colour
cast, re-gamma, 8-bit, JPEG) with freshly drawn parameters, so each epoch sees new darkness and noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from lowlight_rt.errors import InputError
from lowlight_rt.synth import LowLightParams, sample_params, simulate_low_light

from .base import ImageSetDataset
from .io import list_images, read_image
from .transforms import to_tensor

__all__ = ["SyntheticPairDataset"]


class SyntheticPairDataset(ImageSetDataset):
    """``(low, high)`` pairs made from a folder of well-lit images.

    Args:
        root: folder of well-lit pictures (e.g. ``DIR/high`` or any photo collection).
        crop, flip, rotate, exclude_stems: see :class:`~training.data.base.ImageSetDataset`.
            Cropping happens before darkening (cheaper; noise statistics do not depend on it).
        exposure_range: range of the exposure draw (log-uniform).
        video_share: share of the draws that go through the H.264 night-video stage (compressed 4:2:0,
            black / chroma bias; see :func:`~lowlight_rt.synth.sample_params`).
        params: fixed :class:`~lowlight_rt.synth.LowLightParams` (or a dict of them) instead of
            random draws.
        seed: ``None``: fresh randomness on every access, from torch's generator (which a seeded
            DataLoader makes reproducible); an int: the same low image for an index on every pass.
            Validation subsets always use fixed noise.
        recursive: include sub-folders.

    Items: ``{"low", "high"}`` ``(3, H, W)`` float in [0, 1] and ``"name"`` (the stem).
    """

    def __init__(self, root: str | Path, *, crop: int | None = None, flip: bool = False, rotate: bool = False,
                 exposure_range: tuple[float, float] = (0.02, 0.3), video_share: float = 0.0,
                 params: LowLightParams | dict[str, Any] | None = None, seed: int | None = None,
                 recursive: bool = False, exclude_stems: Iterable[str] | None = None) -> None:
        super().__init__(crop, flip, rotate, exclude_stems)
        self.root = Path(root)
        self.exposure_range = (float(exposure_range[0]), float(exposure_range[1]))
        self.video_share = float(video_share)
        if isinstance(params, dict):
            params = LowLightParams(**{k: (tuple(v) if k == "color_cast" else v) for k, v in params.items()})
        self.params = params
        self.seed = seed
        files = list_images(self.root, recursive=recursive)
        self._finish([(str(f.relative_to(self.root).with_suffix("")) if recursive else f.stem, f) for f in files])
        if not self.records:
            raise InputError(f"no well-lit images found in {self.root}")

    def paths(self, index: int) -> tuple[Path]:
        return (self.records[index][1],)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.seed is None and not self.evaluation:
            return None
        g = torch.Generator()
        g.manual_seed((int(self.seed or 0) * 1_000_003 + index) % (2**63))
        return g

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        stem, path = self.records[index]
        g = self._generator(index)
        high = to_tensor(read_image(path))
        (high,) = self.transform(high, generator=g)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=g).item())
        rng = np.random.default_rng(noise_seed)
        p = self.params if self.params is not None else sample_params(rng, exposure_range=self.exposure_range,
                                                                          video_share=self.video_share)
        low = simulate_low_light(high, p, rng=rng)
        return {"low": low, "high": high, "name": stem}
