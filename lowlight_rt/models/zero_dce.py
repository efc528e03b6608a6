"""Zero-DCE (Guo et al., CVPR 2020): DCE-Net predicts pixel-wise light-enhancement curves.

DCE-Net is 7 plain 3x3 convs of ``channels`` (32) with symmetric skip concatenations
(conv5 <- [x3, x4], conv6 <- [x2, x5], conv7 <- [x1, x6]); conv7 outputs ``3 * iterations`` tanh
maps, the curve parameters alpha_n in [-1, 1] applied ``iterations`` (8) times:

    LE(x) = x + alpha * x * (1 - x)

(the official code writes ``x + r * (x^2 - x)``, i.e. ``alpha = -r``; we return alpha.)
Layer names ``e_conv1 .. e_conv7`` match the official checkpoint, which
:func:`load_official_zero_dce` loads unchanged. :meth:`ZeroDCE.enhance` predicts the curves at low
resolution and applies them, bilinearly upsampled, to the full-resolution frame.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .base import EnhancementModel, resize
from .checkpoint import read_foreign_state_dict
from .registry import register_model


@register_model("zero_dce")
class ZeroDCE(EnhancementModel):
    """DCE-Net + iterated quadratic curves. Any input size; output in [0, 1] for input in [0, 1]."""

    default_proc_size = 256
    size_multiple = 4

    def __init__(self, channels: int = 32, iterations: int = 8) -> None:
        super().__init__(channels=channels, iterations=iterations)
        c = channels
        self.iterations = iterations
        self.e_conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=True)
        self.e_conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=True)
        self.e_conv3 = nn.Conv2d(c, c, 3, 1, 1, bias=True)
        self.e_conv4 = nn.Conv2d(c, c, 3, 1, 1, bias=True)
        self.e_conv5 = nn.Conv2d(2 * c, c, 3, 1, 1, bias=True)
        self.e_conv6 = nn.Conv2d(2 * c, c, 3, 1, 1, bias=True)
        self.e_conv7 = nn.Conv2d(2 * c, 3 * iterations, 3, 1, 1, bias=True)

    def _dce(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        alpha = -torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        return alpha, [x1, x2, x3, x4, x5, x6]

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curve parameter maps ``(B, 3 * iterations, H, W)`` in [-1, 1] for ``x`` ``(B, 3, H, W)``."""
        return self._dce(x)[0]

    def apply_curves(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Apply ``LE(x) = x + a x (1 - x)`` once per 3-channel slice of ``alpha`` ``(B, 3n, H, W)``."""
        for a in torch.split(alpha, 3, dim=1):
            x = x + a * x * (1 - x)
        return x

    def forward_with_curves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, 3, H, W)`` in [0, 1] -> (enhanced ``(B, 3, H, W)`` in [0, 1], curves
        ``(B, 3 * iterations, H, W)`` in [-1, 1]); the curves feed the illumination-smoothness loss."""
        alpha = self.curves(x)
        return self.apply_curves(x, alpha), alpha

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Enhanced image and the six hidden feature maps ``[(B, channels, H, W)] * 6``."""
        alpha, feats = self._dce(x)
        return self.apply_curves(x, alpha), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.forward_with_curves(x)[0]

    def enhance(self, full: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
        """Curves from ``low`` ``(B, 3, h, w)``, upsampled bilinearly, applied to ``full`` ``(B, 3, H, W)``."""
        alpha = self.curves(full if low is None else low)
        alpha = resize(alpha, tuple(full.shape[-2:]))
        return self.apply_curves(full, alpha).clamp(0, 1)


def load_official_zero_dce(path: str | os.PathLike) -> ZeroDCE:
    """Load the official Zero-DCE checkpoint (e.g. ``Epoch99.pth``: a plain state dict, possibly with
    a DataParallel ``module.`` prefix) into :class:`ZeroDCE` unchanged. Returns the model in eval mode."""
    sd = read_foreign_state_dict(path, "Zero-DCE")
    if "e_conv1.weight" not in sd or "e_conv7.weight" not in sd:
        raise ModelError(f"{path} is not a Zero-DCE state dict (no e_conv1 / e_conv7 weights)")
    model = ZeroDCE(channels=int(sd["e_conv1.weight"].shape[0]),
                    iterations=int(sd["e_conv7.weight"].shape[0]) // 3)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{path}: weights do not match DCE-Net ({first})") from e
    return model.eval()
