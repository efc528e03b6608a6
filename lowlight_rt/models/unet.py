"""U-Net with residual blocks and attention-gated skip connections.

Encoder level ``i`` works at ``base_channels * 2**i`` channels and halves the resolution with a
stride-2 conv; the decoder doubles it with a transposed conv. Each skip passes an attention gate
before it is concatenated into the decoder::

    a = sigmoid(psi(relu(theta(skip) + phi(decoder))))   # theta, phi: 1x1 to C/2; psi: 1x1 back to C
    decoder = fuse(cat[decoder, skip * a])                # fuse: 1x1, 2C -> C

Residual blocks are ``x + conv(lrelu(conv(x)))``, no normalisation. The output is the input plus a
predicted residual, clamped to [0, 1]. Inputs of any size are padded to ``2**depth`` and cropped back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .arch_layers import crop_to, pad_to_multiple, st_clamp01
from .base import EnhancementModel
from .registry import register_model

#: teacher preset (channels 32-64-128-256-512, 2 residual blocks per level)
UNET_TEACHER_CFG: dict[str, Any] = {"base_channels": 32, "depth": 4, "blocks": 2}
#: small student preset (channels 16-32-64-128, 1 residual block per level); also the registry default
UNET_STUDENT_CFG: dict[str, Any] = {"base_channels": 16, "depth": 3, "blocks": 1}


class ResBlock(nn.Module):
    """``x + conv3x3(lrelu(conv3x3(x)))``, ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AttentionGate(nn.Module):
    """Gate a skip ``(B, C, H, W)`` by the decoder signal ``(B, C, H, W)`` through a C/2 bottleneck."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, mid, 1)
        self.phi = nn.Conv2d(channels, mid, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.theta(skip) + self.phi(gate))


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])


@register_model("unet")
class UNet(EnhancementModel):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any H, W."""

    size_multiple = 16
    default_proc_size = 360

    def __init__(self, base_channels: int = 16, depth: int = 3, blocks: int = 1) -> None:
        super().__init__(base_channels=base_channels, depth=depth, blocks=blocks)
        chs = [base_channels * 2 ** i for i in range(depth + 1)]
        self.multiple = 2 ** depth
        self.stem = nn.Conv2d(3, chs[0], 3, padding=1)
        self.encoders = nn.ModuleList([_stage(chs[i], blocks) for i in range(depth)])
        self.downs = nn.ModuleList([nn.Conv2d(chs[i], chs[i + 1], 3, stride=2, padding=1) for i in range(depth)])
        self.bottleneck = _stage(chs[depth], blocks)
        self.ups = nn.ModuleList([nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2) for i in range(depth)])
        self.gates = nn.ModuleList([AttentionGate(chs[i]) for i in range(depth)])
        self.fuses = nn.ModuleList([nn.Conv2d(2 * chs[i], chs[i], 1) for i in range(depth)])
        self.decoders = nn.ModuleList([_stage(chs[i], blocks) for i in range(depth)])
        self.tail = nn.Conv2d(chs[0], 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Enhanced ``(B, 3, H, W)`` in [0, 1] and ``depth + 1`` features: the bottleneck
        ``(B, base*2**depth, H/2**depth, W/2**depth)`` then each decoder level, coarse to fine."""
        xp, size = pad_to_multiple(x, self.multiple)
        f = self.stem(xp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            f = enc(f)
            skips.append(f)
            f = self.act(down(f))
        f = self.bottleneck(f)
        feats = [f]
        for i in reversed(range(len(skips))):
            f = self.act(self.ups[i](f))
            gated = self.gates[i](skips[i], f)
            f = self.decoders[i](self.fuses[i](torch.cat([f, gated], 1)))
            feats.append(f)
        out = self.tail(f) + xp
        return st_clamp01(crop_to(out, size)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.forward_features(x)[0]
