"""The four zero-reference losses of Zero-DCE (Guo et al., CVPR 2020).

- spatial consistency: 4x4-pooled luminance differences to the 4 neighbours must match the input's;
- exposure control: the mean luminance of 16x16 patches should be ``E = 0.6``;
- colour constancy: the mean R, G and B of the enhanced image should agree (grey world);
- illumination smoothness: total variation of the predicted curve maps.

:class:`ZeroReferenceLoss` sums them with Zero-DCE's training weights (1, 10, 5, 200).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_image, check_pair

__all__ = ["spatial_consistency_loss", "SpatialConsistencyLoss", "exposure_control_loss", "ExposureControlLoss",
           "color_constancy_loss", "ColorConstancyLoss", "illumination_smoothness_loss",
           "IlluminationSmoothnessLoss", "ZeroReferenceLoss"]


def _neighbour_diffs(lum: torch.Tensor, padding: str) -> torch.Tensor:
    """``(B, 1, h, w)`` -> ``(B, 4, h, w)``: value minus its left, right, up and down neighbours."""
    mode = "constant" if padding == "zeros" else "replicate"
    p = F.pad(lum, (1, 1, 1, 1), mode=mode)
    h, w = lum.shape[-2:]
    centre = p[:, :, 1:h + 1, 1:w + 1]
    return torch.cat([centre - p[:, :, 1:h + 1, 0:w], centre - p[:, :, 1:h + 1, 2:w + 2],
                      centre - p[:, :, 0:h, 1:w + 1], centre - p[:, :, 2:h + 2, 1:w + 1]], dim=1)


def spatial_consistency_loss(enhanced: torch.Tensor, original: torch.Tensor, pool: int = 4,
                             padding: str = "zeros") -> torch.Tensor:
    """Zero-DCE's spatial consistency loss.

    Luminance (channel mean) of both images is average-pooled over ``pool x pool`` regions; the
    squared differences between the enhanced and original neighbour contrasts are summed over the
    four directions and averaged.

    Args:
        enhanced: ``(B, 3, H, W)`` float in [0, 1].
        original: ``(B, 3, H, W)`` float in [0, 1], the low-light input.
        pool: region size (4 in Zero-DCE; reduced to the image size for tiny inputs).
        padding: ``"zeros"`` (the official implementation's conv padding, which also ties border
            regions' brightness to the input's) or ``"replicate"``.
    Returns:
        scalar >= 0, zero when ``enhanced == original``.
    """
    check_pair(enhanced, original)
    check_choice(padding, ("zeros", "replicate"), "padding")
    k = (min(pool, enhanced.shape[-2]), min(pool, enhanced.shape[-1]))
    e = F.avg_pool2d(enhanced.mean(dim=1, keepdim=True), k)
    o = F.avg_pool2d(original.mean(dim=1, keepdim=True), k)
    return (_neighbour_diffs(o, padding) - _neighbour_diffs(e, padding)).pow(2).sum(dim=1).mean()


def exposure_control_loss(enhanced: torch.Tensor, patch: int = 16, level: float = 0.6) -> torch.Tensor:
    """Zero-DCE's exposure control loss: ``mean((avgpool_patch(luminance) - level)^2)``.

    Args:
        enhanced: ``(B, C, H, W)`` float in [0, 1].
        patch: non-overlapping patch size (16; reduced to the image size for smaller inputs).
        level: well-exposedness target ``E`` (0.6).
    Returns:
        scalar >= 0, zero when every patch's mean luminance equals ``level``.
    """
    check_image(enhanced, "enhanced")
    k = (min(patch, enhanced.shape[-2]), min(patch, enhanced.shape[-1]))
    return (F.avg_pool2d(enhanced.mean(dim=1, keepdim=True), k) - level).pow(2).mean()


def color_constancy_loss(enhanced: torch.Tensor) -> torch.Tensor:
    """Zero-DCE's colour constancy loss ``sqrt(D_rg^2 + D_rb^2 + D_gb^2)``, ``D_pq = (mean_p - mean_q)^2``.

    Args:
        enhanced: ``(B, 3, H, W)`` float in [0, 1].
    Returns:
        scalar >= 0 (mean over the batch), zero when the three channel means are equal; its
        gradient is finite there too.
    """
    check_image(enhanced, "enhanced", channels=3)
    m = enhanced.mean(dim=(2, 3))  # (B, 3)
    d = torch.stack([(m[:, 0] - m[:, 1]).pow(2), (m[:, 0] - m[:, 2]).pow(2), (m[:, 1] - m[:, 2]).pow(2)], dim=1)
    return torch.linalg.vector_norm(d, dim=1).mean()


def illumination_smoothness_loss(curves: torch.Tensor) -> torch.Tensor:
    """Zero-DCE's illumination smoothness (total variation) loss on the curve parameter maps.

    ``2 * (sum(dy^2) / ((H-1) W) + sum(dx^2) / (H (W-1))) / B`` as in the official implementation.

    Args:
        curves: ``(B, 3n, H, W)`` float, the predicted curve maps (n iterations), H, W >= 2.
    Returns:
        scalar >= 0, zero for spatially constant maps.
    """
    check_image(curves, "curves")
    b, _, h, w = curves.shape
    if h < 2 or w < 2:
        raise ValueError(f"curve maps must be at least 2x2, got {tuple(curves.shape[-2:])}")
    dy = (curves[:, :, 1:, :] - curves[:, :, :-1, :]).pow(2).sum()
    dx = (curves[:, :, :, 1:] - curves[:, :, :, :-1]).pow(2).sum()
    return 2.0 * (dy / ((h - 1) * w) + dx / (h * (w - 1))) / b


class SpatialConsistencyLoss(nn.Module):
    """Module form of :func:`spatial_consistency_loss`. ``forward(enhanced, original)``."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "input")

    def __init__(self, pool: int = 4, padding: str = "zeros") -> None:
        super().__init__()
        self.pool, self.padding = int(pool), check_choice(padding, ("zeros", "replicate"), "padding")

    def forward(self, enhanced: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        return spatial_consistency_loss(enhanced, original, self.pool, self.padding)


class ExposureControlLoss(nn.Module):
    """Module form of :func:`exposure_control_loss`. ``forward(enhanced)``."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred",)

    def __init__(self, patch: int = 16, level: float = 0.6) -> None:
        super().__init__()
        if patch < 1 or not 0.0 <= level <= 1.0:
            raise ValueError(f"need patch >= 1 and level in [0, 1], got {patch}, {level}")
        self.patch, self.level = int(patch), float(level)

    def forward(self, enhanced: torch.Tensor) -> torch.Tensor:
        return exposure_control_loss(enhanced, self.patch, self.level)

    def extra_repr(self) -> str:
        return f"patch={self.patch}, level={self.level}"


class ColorConstancyLoss(nn.Module):
    """Module form of :func:`color_constancy_loss`. ``forward(enhanced)``."""

    input_keys: ClassVar[tuple[str, ...]] = ("pred",)

    def forward(self, enhanced: torch.Tensor) -> torch.Tensor:
        return color_constancy_loss(enhanced)


class IlluminationSmoothnessLoss(nn.Module):
    """Module form of :func:`illumination_smoothness_loss`. ``forward(curves)``."""

    input_keys: ClassVar[tuple[str, ...]] = ("curves",)

    def forward(self, curves: torch.Tensor) -> torch.Tensor:
        return illumination_smoothness_loss(curves)


class ZeroReferenceLoss(nn.Module):
    """Zero-DCE's total loss ``w_spa L_spa + w_exp L_exp + w_col L_col + w_tv L_tv``.

    ``forward(enhanced, original, curves)``: ``(B, 3, H, W)``, ``(B, 3, H, W)`` in [0, 1] and the
    ``(B, 3n, H, W)`` curve maps -> scalar. :meth:`components` returns the unweighted terms.
    """

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "input", "curves")

    def __init__(self, w_spa: float = 1.0, w_exp: float = 10.0, w_col: float = 5.0, w_tv: float = 200.0,
                 patch: int = 16, level: float = 0.6, pool: int = 4, padding: str = "zeros") -> None:
        super().__init__()
        self.weights = {"spatial": float(w_spa), "exposure": float(w_exp), "color": float(w_col),
                        "smoothness": float(w_tv)}
        self.spatial = SpatialConsistencyLoss(pool, padding)
        self.exposure = ExposureControlLoss(patch, level)
        self.color = ColorConstancyLoss()
        self.smoothness = IlluminationSmoothnessLoss()

    def components(self, enhanced: torch.Tensor, original: torch.Tensor,
                   curves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted ``{"spatial", "exposure", "color", "smoothness"}`` scalars."""
        return {"spatial": self.spatial(enhanced, original), "exposure": self.exposure(enhanced),
                "color": self.color(enhanced), "smoothness": self.smoothness(curves)}

    def forward(self, enhanced: torch.Tensor, original: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
        parts = self.components(enhanced, original, curves)
        return torch.stack([self.weights[k] * v for k, v in parts.items()]).sum()

    def extra_repr(self) -> str:
        return ", ".join(f"w_{k}={v}" for k, v in self.weights.items())
