"""Temporal-consistency loss: enhancing a slightly moved frame must move the enhanced frame alike.

A video's consecutive frames differ mostly by small camera motion. For a random small affine warp
``W`` (translation, rotation, scale), the loss compares ``model(W(x))`` with ``W(model(x))`` inside
the region where ``W`` sampled real pixels (plus an optional margin), which penalises flicker and
position-dependent behaviour without needing video or optical flow.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine
from torch import nn

from ._checks import check_choice, check_image

__all__ = ["random_affine", "warp", "valid_mask", "temporal_consistency_loss", "TemporalConsistencyLoss"]


def random_affine(batch: int, height: int, width: int, max_translation: float = 0.02,
                  max_rotation: float = 1.0, max_scale: float = 0.02, *, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random small affine warps in pixel coordinates.

    Args:
        batch, height, width: batch size and image size.
        max_translation: largest shift as a fraction of the image side (uniform in ``[-m, m]``).
        max_rotation: largest rotation in degrees (about the image centre).
        max_scale: largest relative zoom (scale uniform in ``[1 - m, 1 + m]``).
        generator: optional CPU generator for reproducible warps.
    Returns:
        ``(B, 2, 3)`` matrices mapping source to destination pixels (kornia convention).
    """
    u = torch.rand(batch, 4, generator=generator) * 2 - 1  # in [-1, 1]
    center = torch.tensor([(width - 1) / 2, (height - 1) / 2]).expand(batch, 2)
    angle = u[:, 0] * max_rotation
    scale = (1 + u[:, 1] * max_scale).unsqueeze(1).expand(batch, 2)
    m = get_rotation_matrix2d(center.contiguous(), angle, scale.contiguous())
    m[:, 0, 2] += u[:, 2] * max_translation * width
    m[:, 1, 2] += u[:, 3] * max_translation * height
    return m.to(device=device, dtype=dtype)


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Bilinear warp of ``(B, C, H, W)`` by ``(B, 2, 3)`` pixel-space matrices; outside -> 0."""
    check_image(x, "x")
    return warp_affine(x, matrix.to(x.dtype), dsize=(x.shape[-2], x.shape[-1]), mode="bilinear",
                       padding_mode="zeros", align_corners=True)


def valid_mask(matrix: torch.Tensor, height: int, width: int, margin: int = 0) -> torch.Tensor:
    """``(B, 1, H, W)`` float mask of destination pixels sampled fully inside the source, eroded by ``margin``."""
    ones = torch.ones(matrix.shape[0], 1, height, width, device=matrix.device, dtype=matrix.dtype)
    mask = (warp(ones, matrix) > 1 - 1e-3).to(matrix.dtype)
    if margin > 0:
        mask = 1 - F.max_pool2d(1 - mask, 2 * margin + 1, stride=1, padding=margin)
    return mask


def temporal_consistency_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                              matrix: torch.Tensor, output: torch.Tensor | None = None,
                              criterion: str = "l1", margin: int = 0) -> torch.Tensor:
    """Masked distance between ``model(warp(x))`` and ``warp(model(x))``.

    Args:
        model: callable ``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H, W)`` (an enhancement network).
        x: ``(B, 3, H, W)`` float in [0, 1].
        matrix: ``(B, 2, 3)`` warps (e.g. from :func:`random_affine`).
        output: ``model(x)`` if already computed (saves one forward pass); gradients flow through it.
        criterion: ``"l1"`` | ``"mse"``.
        margin: pixels removed from the valid region's border (e.g. a network's receptive field).
    Returns:
        scalar >= 0, zero for a model that commutes with the warp (e.g. the identity).
    """
    check_image(x, "x")
    check_choice(criterion, ("l1", "mse"), "criterion")
    if matrix.shape != (x.shape[0], 2, 3):
        raise ValueError(f"matrix must have shape ({x.shape[0]}, 2, 3), got {tuple(matrix.shape)}")
    matrix = matrix.to(device=x.device, dtype=torch.float32)
    out = model(x) if output is None else output
    out_of_warped = model(warp(x, matrix.to(x.dtype)))
    warped_out = warp(out, matrix.to(out.dtype))
    if out_of_warped.shape != warped_out.shape:
        raise ValueError(f"model output shapes differ: {tuple(out_of_warped.shape)} vs {tuple(warped_out.shape)}")
    mask = valid_mask(matrix, x.shape[-2], x.shape[-1], margin)
    diff = (out_of_warped.float() - warped_out.float())
    diff = diff.abs() if criterion == "l1" else diff.pow(2)
    denom = (mask.sum() * diff.shape[1]).clamp_min(1.0)  # no host sync; 0 if nothing is valid
    return (diff * mask).sum() / denom


class TemporalConsistencyLoss(nn.Module):
    """Temporal consistency under a random small affine warp (kornia ``warp_affine``).

    Args:
        max_translation: largest shift, fraction of the side (0.02 = 2 %).
        max_rotation: largest rotation in degrees.
        max_scale: largest relative zoom.
        criterion: ``"l1"`` | ``"mse"``.
        margin: pixels to drop at the valid region's border.

    ``forward(model, x, output=None)``: ``model`` a callable on ``(B, 3, H, W)`` in [0, 1], ``x`` the
    batch, ``output`` optionally ``model(x)`` -> scalar >= 0. A new warp is drawn per call and per sample.
    """

    input_keys: ClassVar[tuple[str, ...]] = ("model", "input")

    def __init__(self, max_translation: float = 0.02, max_rotation: float = 1.0, max_scale: float = 0.02,
                 criterion: str = "l1", margin: int = 0) -> None:
        super().__init__()
        if min(max_translation, max_rotation, max_scale) < 0 or max_translation >= 0.5 or max_scale >= 0.5 \
                or not math.isfinite(max_rotation):
            raise ValueError("warp limits must be >= 0 (translation and scale below 0.5)")
        self.max_translation, self.max_rotation, self.max_scale = max_translation, max_rotation, max_scale
        self.criterion = check_choice(criterion, ("l1", "mse"), "criterion")
        self.margin = int(margin)

    def forward(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                output: torch.Tensor | None = None) -> torch.Tensor:
        check_image(x, "x")
        m = random_affine(x.shape[0], x.shape[-2], x.shape[-1], self.max_translation, self.max_rotation,
                          self.max_scale, device=x.device)
        return temporal_consistency_loss(model, x, m, output, self.criterion, self.margin)

    def extra_repr(self) -> str:
        return (f"max_translation={self.max_translation}, max_rotation={self.max_rotation}, "
                f"max_scale={self.max_scale}, criterion={self.criterion!r}")
