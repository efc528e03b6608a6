"""Gradient-guided enhancement network (teacher 6 x 96, student 3 x 48).

Two branches at half resolution::

    image  -> head 3x3 -> stride-2 conv -> [FA block -> (+ g_i)] x blocks -> transposed conv (x2)
                  |                                                              + head -> 3x3 -> + image
    |Sobel(image)| -> 3x3 -> stride-2 conv -> [3x3 conv + ReLU = g_i] x blocks --^ (summed at every block)

A feature-attention (FA) block is ``x + PA(CA(conv(relu(conv(x)) + x)))``: a local residual, channel
attention (CA) and pixel attention (PA). Resolution changes only by the stride-2 conv and the
transposed conv: no pooling layers and no normalisation layers. CA's per-channel descriptor is the
global spatial mean of the features (``tensor.mean``), followed by a 1x1 squeeze / excite; that is the
only global operation. The gradient branch uses kornia's Sobel magnitude of the RGB input.
``forward_features`` also returns the fused feature map after every block (for attention-map
distillation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .arch_layers import crop_to, pad_to_multiple, sobel_magnitude, st_clamp01
from .base import EnhancementModel
from .registry import register_model

#: the teacher preset (6 FA blocks x 96 channels)
GG_TEACHER_CFG: dict[str, Any] = {"blocks": 6, "channels": 96}
#: the student preset (3 FA blocks x 48 channels); also the registry default
GG_STUDENT_CFG: dict[str, Any] = {"blocks": 3, "channels": 48}


class ChannelAttention(nn.Module):
    """``x * sigmoid(W2 relu(W1 mean_hw(x)))`` with 1x1 convs, ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        mid = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


class PixelAttention(nn.Module):
    """``x * sigmoid(W2 relu(W1 x))`` with 1x1 convs giving one weight per pixel."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        mid = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(mid, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class FABlock(nn.Module):
    """Feature-attention block: local residual + channel attention + pixel attention + residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.ca = ChannelAttention(channels)
        self.pa = PixelAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.act(self.conv1(x)) + x
        return self.pa(self.ca(self.conv2(res))) + x


@register_model("gradient_guided")
class GradientGuidedNet(EnhancementModel):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any H, W (padded to even)."""

    size_multiple = 2
    default_proc_size = 360

    def __init__(self, blocks: int = 3, channels: int = 48) -> None:
        super().__init__(blocks=blocks, channels=channels)
        c = channels
        self.head = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([FABlock(c) for _ in range(blocks)])
        self.up = nn.Sequential(nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.tail = nn.Conv2d(c, 3, 3, padding=1)
        self.grad_head = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.grad_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))
                                          for _ in range(blocks)])

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Enhanced ``(B, 3, H, W)`` in [0, 1] and the fused features after each block,
        ``[(B, channels, ceil(H/2), ceil(W/2))] * blocks``."""
        xp, size = pad_to_multiple(x, self.size_multiple)
        shallow = self.head(xp)
        f = self.down(shallow)
        g = self.grad_head(sobel_magnitude(xp).to(xp.dtype))
        feats = []
        for block, grad_block in zip(self.blocks, self.grad_blocks):
            g = grad_block(g)
            f = block(f) + g
            feats.append(f)
        out = self.tail(self.up(f) + shallow) + xp
        return st_clamp01(crop_to(out, size)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.forward_features(x)[0]
