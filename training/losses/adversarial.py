"""Adversarial training: discriminators and GAN losses (BCE with label smoothing, LSGAN, hinge).

- :class:`PatchDiscriminator`: a PatchGAN (strided 4x4 convolutions, LeakyReLU 0.2) with spectral
  normalisation on every convolution and no batch norm; it scores overlapping patches.
- :class:`ResidualDiscriminator`: residual down-sampling blocks with spectral norm (the U-Net GAN
  preset's critic), global sum pooling, one score per image.
- :func:`generator_loss` / :func:`discriminator_loss` and :class:`GANLoss` for the three variants.
- :class:`AdversarialLoss` bundles a discriminator with a GAN loss so it can be one term of a
  :class:`~training.losses.hybrid.HybridLoss` (generator side) and trained on the side
  (:meth:`AdversarialLoss.discriminator_loss`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ._checks import check_choice, check_image

__all__ = ["GAN_KINDS", "PatchDiscriminator", "ResidualDiscriminator", "generator_loss",
           "discriminator_loss", "GANLoss", "AdversarialLoss", "build_discriminator"]

GAN_KINDS = ("bce", "lsgan", "hinge")


def _sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
             use_sn: bool = True, bias: bool = True) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias)
    return spectral_norm(conv) if use_sn else conv


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator with spectral normalisation.

    Args:
        in_channels: channels of the judged image (3; 6 for a conditional D fed ``cat(input, image)``).
        base_channels: width of the first layer, doubled per down-sampling up to ``8 * base``.
        num_layers: number of stride-2 convolutions (3 -> 70x70 receptive field).
        spectral: wrap every convolution in spectral normalisation.

    ``forward(x)``: ``(B, in_channels, H, W)`` float (images in [0, 1]) -> ``(B, 1, h, w)`` logits, one
    per patch (``h ~ H / 2**num_layers``, at least 1 for inputs of 16 px and more).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3,
                 spectral: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = [_sn_conv(in_channels, base_channels, 4, 2, 1, spectral),
                                   nn.LeakyReLU(0.2, inplace=True)]
        ch = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2 ** i, 8)
            stride = 2 if i < num_layers else 1
            layers += [_sn_conv(ch, out, 4, stride, 1, spectral), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        layers.append(_sn_conv(ch, 1, 4, 1, 1, spectral))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "discriminator input", self.in_channels)
        return self.net(x)


class _ResBlockDown(nn.Module):
    """Residual block: (ReLU) conv3 - ReLU - conv3 [- avgpool2], 1x1 conv [+ avgpool2] shortcut."""

    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool, spectral: bool) -> None:
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = _sn_conv(in_ch, out_ch, 3, 1, 1, spectral)
        self.conv2 = _sn_conv(out_ch, out_ch, 3, 1, 1, spectral)
        self.skip = _sn_conv(in_ch, out_ch, 1, 1, 0, spectral) if (in_ch != out_ch or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.first:  # first block: pool before the 1x1 conv (SNGAN "optimized" block)
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        else:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        if self.down:
            h = F.avg_pool2d(h, 2)
        return h + s


class ResidualDiscriminator(nn.Module):
    """Residual-block discriminator with spectral norm (used by the ``unet_gan`` preset).

    Args:
        in_channels: channels of the judged image.
        base_channels: width of the first block; doubled per block up to ``8 * base``.
        num_blocks: number of down-sampling residual blocks (each halves the resolution).
        spectral: spectral normalisation on every layer.

    ``forward(x)``: ``(B, in_channels, H, W)`` float, ``H, W >= 2**num_blocks`` -> ``(B, 1)`` logits.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 32, num_blocks: int = 4,
                 spectral: bool = True) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        blocks: list[nn.Module] = []
        ch = in_channels
        for i in range(num_blocks):
            out = base_channels * min(2 ** i, 8)
            blocks.append(_ResBlockDown(ch, out, down=True, first=(i == 0), spectral=spectral))
            ch = out
        blocks.append(_ResBlockDown(ch, ch, down=False, first=False, spectral=spectral))
        self.blocks = nn.Sequential(*blocks)
        linear = nn.Linear(ch, 1)
        self.head = spectral_norm(linear) if spectral else linear
        self.in_channels, self.num_blocks = in_channels, num_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "discriminator input", self.in_channels)
        if min(x.shape[-2:]) < 2 ** self.num_blocks:
            raise ValueError(f"ResidualDiscriminator with {self.num_blocks} blocks needs inputs of at least "
                             f"{2 ** self.num_blocks} px, got {tuple(x.shape[-2:])}")
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(h)


def build_discriminator(kind: str = "patch", **cfg: object) -> nn.Module:
    """``"patch"`` -> :class:`PatchDiscriminator`, ``"residual"`` -> :class:`ResidualDiscriminator`."""
    check_choice(kind, ("patch", "residual"), "discriminator")
    return PatchDiscriminator(**cfg) if kind == "patch" else ResidualDiscriminator(**cfg)  # type: ignore[arg-type]


def generator_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Generator side: make the discriminator call the fakes real.

    Args:
        fake_logits: discriminator logits on generated images, any shape (e.g. ``(B, 1, h, w)``).
        kind: ``"bce"`` (non-saturating, target 1), ``"lsgan"`` (``mean((D - 1)^2)``),
            ``"hinge"`` (``-mean(D)``).
    Returns:
        scalar; smaller when the discriminator scores the fakes higher.
    """
    check_choice(kind, GAN_KINDS, "kind")
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "lsgan":
        return (fake_logits - 1).pow(2).mean()
    return -fake_logits.mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce",
                       real_label: float = 0.9) -> torch.Tensor:
    """Discriminator side: real -> real, fake -> fake.

    Args:
        real_logits: logits on real (target) images.
        fake_logits: logits on generated images (compute them from detached images).
        kind: ``"bce"``, ``"lsgan"`` or ``"hinge"``.
        real_label: target for real images with ``"bce"`` (one-sided label smoothing: 0.9 by
            default, fakes keep 0); ignored by the other kinds.
    Returns:
        scalar; smaller when reals score high and fakes low.
    """
    check_choice(kind, GAN_KINDS, "kind")
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label must be in (0, 1], got {real_label}")
    if kind == "bce":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


class GANLoss(nn.Module):
    """GAN objective of one kind. ``generator(fake_logits)``, ``discriminator(real_logits, fake_logits)``."""

    def __init__(self, kind: str = "bce", real_label: float = 0.9) -> None:
        super().__init__()
        self.kind = check_choice(kind, GAN_KINDS, "kind")
        if not 0.0 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0, 1], got {real_label}")
        self.real_label = float(real_label)

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return generator_loss(fake_logits, self.kind)

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(real_logits, fake_logits, self.kind, self.real_label)

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss (the term a generator minimises)."""
        return self.generator(fake_logits)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, real_label={self.real_label}"


class AdversarialLoss(nn.Module):
    """A discriminator plus a GAN loss, usable as a HybridLoss term.

    Args:
        discriminator: ``"patch"`` / ``"residual"`` (built with ``disc_cfg``) or an ``nn.Module``.
        kind: ``"bce"`` | ``"lsgan"`` | ``"hinge"``.
        real_label: one-sided label smoothing target for ``"bce"``.
        conditional: feed ``cat(input, image)`` to the discriminator (pix2pix style); then
            ``forward`` / ``discriminator_loss`` need ``condition``.

    ``forward(pred, condition=None)``: generator loss on ``(B, 3, H, W)`` in [0, 1]; gradients reach
    ``pred`` through the discriminator (whose parameters the *generator's* optimiser must not hold:
    use :meth:`discriminator_parameters` for the discriminator's own optimiser).
    ``discriminator_loss(pred, target, condition=None)``: the discriminator's loss, ``pred`` detached.
    """

    input_keys: ClassVar[tuple[str, ...]] = ("pred",)

    def __init__(self, discriminator: str | nn.Module = "patch", kind: str = "bce", real_label: float = 0.9,
                 conditional: bool = False, **disc_cfg: object) -> None:
        super().__init__()
        self.gan = GANLoss(kind, real_label)
        self.conditional = bool(conditional)
        if isinstance(discriminator, nn.Module):
            if disc_cfg:
                raise ValueError("disc_cfg is only used when the discriminator is given by name")
            self.discriminator = discriminator
        else:
            if conditional and "in_channels" not in disc_cfg:
                disc_cfg["in_channels"] = 6
            self.discriminator = build_discriminator(discriminator, **disc_cfg)

    def _judge(self, image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        if self.conditional:
            if condition is None:
                raise ValueError("a conditional AdversarialLoss needs condition= (the network input)")
            image = torch.cat([condition, image], dim=1)
        return self.discriminator(image)

    def forward(self, pred: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.gan.generator(self._judge(pred, condition))

    def discriminator_loss(self, pred: torch.Tensor, target: torch.Tensor,
                           condition: torch.Tensor | None = None) -> torch.Tensor:
        """Loss to minimise w.r.t. the discriminator's parameters; ``pred`` is detached."""
        return self.gan.discriminator(self._judge(target, condition), self._judge(pred.detach(), condition))

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters the discriminator's optimiser should hold."""
        return list(self.discriminator.parameters())
