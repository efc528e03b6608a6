"""Small building blocks shared by the trainable enhancement families.

Padding to a size multiple, a straight-through clamp to [0, 1], and the Sobel gradient magnitude
(kornia) that the gradient-guided families feed on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import sobel


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` on the bottom/right so H and W are multiples of ``multiple``.

    Uses reflection where the image is large enough, replication otherwise.
    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``(B, C, H', W')`` back to ``size = (H, W)`` (top-left corner)."""
    h, w = size
    if tuple(x.shape[-2:]) == (h, w):
        return x
    return x[..., :h, :w]


def st_clamp01(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in value; in training the gradient passes as if unclamped (straight-through).

    A plain clamp would give zero gradient to a pixel predicted at 1.2 whose target is 0.9; with the
    straight-through estimator the loss can still pull it back into range.
    """
    y = x.clamp(0.0, 1.0)
    if torch.is_grad_enabled() and x.requires_grad:
        return x + (y - x).detach()
    return y


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude of ``(B, C, H, W)`` (kornia, normalised kernels).

    Returns ``(B, C, H, W)``, non-negative. Computed in float32 (safe under autocast).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return sobel(x.float(), normalized=True)
