"""Loss registry: YAML presets name losses; :func:`build_loss` turns a name and options into a module."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from lowlight_rt.errors import InputError

from .adversarial import AdversarialLoss
from .attention import AttentionDistillationLoss
from .contrastive import ContrastiveDistillationLoss
from .frequency import FFTAmplitudeLoss
from .gradient import GradientLoss
from .perceptual import PerceptualLoss
from .pixel import CharbonnierLoss, OutputDistillationLoss, PixelLoss
from .structural import MSSSIMLoss, SSIMLoss
from .temporal import TemporalConsistencyLoss
from .zero_reference import (ColorConstancyLoss, ExposureControlLoss, IlluminationSmoothnessLoss,
                             SpatialConsistencyLoss, ZeroReferenceLoss)

__all__ = ["LOSSES", "build_loss", "list_losses"]

#: name -> factory; every factory returns an ``nn.Module`` with an ``input_keys`` attribute
LOSSES: dict[str, Callable[..., nn.Module]] = {
    "charbonnier": CharbonnierLoss,
    "l1": lambda **cfg: PixelLoss(criterion="l1", **cfg),
    "mse": lambda **cfg: PixelLoss(criterion="mse", **cfg),
    "output_distillation": OutputDistillationLoss,
    "fft": FFTAmplitudeLoss,
    "ssim": SSIMLoss,
    "ms_ssim": MSSSIMLoss,
    "gradient": GradientLoss,
    "perceptual": PerceptualLoss,
    "adversarial": AdversarialLoss,
    "contrastive": ContrastiveDistillationLoss,
    "attention": AttentionDistillationLoss,
    "spatial_consistency": SpatialConsistencyLoss,
    "exposure": ExposureControlLoss,
    "color_constancy": ColorConstancyLoss,
    "illumination_smoothness": IlluminationSmoothnessLoss,
    "zero_reference": ZeroReferenceLoss,
    "temporal": TemporalConsistencyLoss,
}


def list_losses() -> list[str]:
    """Names accepted by :func:`build_loss`, sorted."""
    return sorted(LOSSES)


def build_loss(name: str, **cfg: Any) -> nn.Module:
    """Build the loss registered as ``name`` with keyword options ``cfg``.

    Raises :class:`~lowlight_rt.errors.InputError` (one line) for an unknown name or options the loss
    does not take, and :class:`~lowlight_rt.errors.ModelError` when a loss needs weights that are
    missing (the VGG19 perceptual loss).
    """
    factory = LOSSES.get(name)
    if factory is None:
        raise InputError(f"unknown loss {name!r}; known losses: {', '.join(list_losses())}")
    try:
        return factory(**cfg)
    except TypeError as exc:
        raise InputError(f"bad options for loss {name!r} {sorted(cfg)}: {exc}") from exc
    except ValueError as exc:
        raise InputError(f"bad options for loss {name!r}: {exc}") from exc
