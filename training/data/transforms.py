"""Paired augmentation: random crops, flips and 90-degree rotations applied identically to a group.

Every picture of a training example (low, high, a cached teacher output, teacher features at a
lower resolution) must see the same crop window and the same flips / rotation. The parameters are
drawn once (:meth:`PairTransform.sample`) and applied to each picture (:func:`apply_augment`); a
feature map at ``1/s`` resolution is cropped at ``top/s, left/s`` (crops are aligned to ``s``).

Pictures may be numpy ``(H, W, C)`` arrays or torch ``(C, H, W)`` tensors. Randomness comes from a
``torch.Generator`` (default: torch's global generator, which DataLoader seeds per worker), so a
seeded loader gives reproducible crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

Image = Union[np.ndarray, torch.Tensor]

__all__ = ["AugmentParams", "PairTransform", "apply_augment", "pad_to", "to_tensor"]


@dataclass(frozen=True)
class AugmentParams:
    """One draw of augmentation parameters.

    Attributes:
        top, left: crop corner in pixels of the full-resolution picture (after padding).
        size: crop side in pixels, or ``None`` for no crop.
        hflip, vflip: mirror left-right / top-bottom (after cropping).
        rot90: number of counter-clockwise quarter turns, 0-3 (after flipping).
    """

    top: int = 0
    left: int = 0
    size: int | None = None
    hflip: bool = False
    vflip: bool = False
    rot90: int = 0


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def _hw(img: Image) -> tuple[int, int]:
    return (int(img.shape[0]), int(img.shape[1])) if isinstance(img, np.ndarray) else (int(img.shape[-2]), int(img.shape[-1]))


def pad_to(img: Image, size: int) -> Image:
    """Pads ``img`` at the bottom / right to at least ``size x size`` (reflection, edge where too small)."""
    h, w = _hw(img)
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return img
    if isinstance(img, np.ndarray):
        mode = "reflect" if ph < h and pw < w else "edge"
        pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, pad, mode=mode)
    mode = "reflect" if ph < h and pw < w else "replicate"
    x = img if img.ndim == 4 else img.unsqueeze(0)
    out = F.pad(x.float() if not x.is_floating_point() else x, (0, pw, 0, ph), mode=mode).to(img.dtype)
    return out if img.ndim == 4 else out[0]


def apply_augment(img: Image, p: AugmentParams, scale: int = 1) -> Image:
    """Applies ``p`` to one picture; ``scale`` is how many full-resolution pixels one of its pixels spans.

    Args:
        img: numpy ``(H, W, C)`` / ``(H, W)`` or torch ``(..., C, H, W)``.
        p: the parameters from :meth:`PairTransform.sample` for the full-resolution picture.
        scale: 1 for pictures at full resolution; ``s`` for a feature map at ``1/s`` resolution.
    """
    if p.size is not None:
        size = p.size // scale
        img = pad_to(img, size)
        t, l = p.top // scale, p.left // scale
        img = img[t:t + size, l:l + size] if isinstance(img, np.ndarray) else img[..., t:t + size, l:l + size]
    if isinstance(img, np.ndarray):
        if p.hflip:
            img = img[:, ::-1]
        if p.vflip:
            img = img[::-1]
        if p.rot90:
            img = np.rot90(img, p.rot90, axes=(0, 1))
        return np.ascontiguousarray(img)
    if p.hflip:
        img = img.flip(-1)
    if p.vflip:
        img = img.flip(-2)
    if p.rot90:
        img = torch.rot90(img, p.rot90, dims=(-2, -1))
    return img.contiguous()


class PairTransform:
    """Random crop + flips + 90-degree rotations, identical for every picture of an example.

    Args:
        crop: crop side in pixels (``None``: whole picture). Change it with :meth:`set_crop` between
            epochs (resolution-progressive training). Pictures smaller than ``crop`` are padded.
        flip: random left-right and top-bottom mirroring.
        rotate: random multiples of 90 degrees (square crops keep their shape; without a crop a
            quarter turn swaps H and W).
        align: crop corners are multiples of this (use the largest feature stride when cropping
            feature maps alongside the pictures).

    Example:
        >>> tf = PairTransform(crop=64, flip=True, rotate=True)
        >>> low, high = tf(low, high)   # the same window, flips and rotation for both
    """

    def __init__(self, crop: int | None = None, flip: bool = False, rotate: bool = False, align: int = 1) -> None:
        self.crop = None if crop is None else int(crop)
        self.flip = bool(flip)
        self.rotate = bool(rotate)
        self.align = max(1, int(align))

    def set_crop(self, crop: int | None) -> None:
        """Sets the crop side used from now on (``None``: no crop)."""
        self.crop = None if crop is None else int(crop)

    @property
    def is_identity(self) -> bool:
        return self.crop is None and not self.flip and not self.rotate

    def sample(self, height: int, width: int, generator: torch.Generator | None = None) -> AugmentParams:
        """Draws parameters for a ``height x width`` picture."""
        def draw(n: int) -> int:
            return int(torch.randint(0, n, (1,), generator=generator).item()) if n > 1 else 0

        top = left = 0
        if self.crop is not None:
            a = self.align
            top = draw((max(0, height - self.crop)) // a + 1) * a
            left = draw((max(0, width - self.crop)) // a + 1) * a
        hflip = bool(draw(2)) if self.flip else False
        vflip = bool(draw(2)) if self.flip else False
        rot = draw(4) if self.rotate else 0
        return AugmentParams(top=top, left=left, size=self.crop, hflip=hflip, vflip=vflip, rot90=rot)

    def __call__(self, *images: Image, generator: torch.Generator | None = None) -> tuple[Image, ...]:
        """Applies one random draw to all ``images`` (all must have the same height and width)."""
        if not images:
            return ()
        sizes = {_hw(im) for im in images}
        if len(sizes) != 1:
            raise ValueError(f"paired pictures differ in size: {sorted(sizes)}")
        h, w = sizes.pop()
        p = self.sample(h, w, generator)
        return tuple(apply_augment(im, p) for im in images)

    def __repr__(self) -> str:
        return f"PairTransform(crop={self.crop}, flip={self.flip}, rotate={self.rotate})"

