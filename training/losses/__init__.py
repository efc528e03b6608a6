"""Training losses (kornia style: a function and an ``nn.Module`` for each) and discriminators.

Every module has an ``input_keys`` attribute naming what its ``forward`` takes, so
:class:`HybridLoss` can combine named, weighted terms from a YAML preset; :func:`build_loss` builds
one term by name (see :data:`LOSSES`).
"""

from .adversarial import (GAN_KINDS, AdversarialLoss, GANLoss, PatchDiscriminator, ResidualDiscriminator,
                          build_discriminator, discriminator_loss, generator_loss)
from .attention import AttentionDistillationLoss, attention_distillation_loss, attention_map
from .contrastive import ContrastiveDistillationLoss, ProjectionHead, info_nce
from .frequency import FFTAmplitudeLoss, fft_amplitude_loss
from .gradient import GradientLoss, gradient_loss
from .hybrid import HybridLoss, WeightedLoss
from .perceptual import VGG19_LAYERS, PerceptualLoss, VGG19Features, load_vgg19_state_dict, perceptual_loss
from .pixel import (CharbonnierLoss, OutputDistillationLoss, PixelLoss, charbonnier_loss,
                    output_distillation_loss)
from .registry import LOSSES, build_loss, list_losses
from .structural import (MS_SSIM_WEIGHTS, MSSSIMLoss, SSIMLoss, ms_ssim, ms_ssim_loss, ms_ssim_scales, ssim,
                         ssim_loss)
from .temporal import TemporalConsistencyLoss, random_affine, temporal_consistency_loss, valid_mask, warp
from .zero_reference import (ColorConstancyLoss, ExposureControlLoss, IlluminationSmoothnessLoss,
                             SpatialConsistencyLoss, ZeroReferenceLoss, color_constancy_loss,
                             exposure_control_loss, illumination_smoothness_loss, spatial_consistency_loss)

__all__ = [
    # pixel / output distillation
    "charbonnier_loss", "CharbonnierLoss", "PixelLoss", "output_distillation_loss", "OutputDistillationLoss",
    # frequency, structure, gradient
    "fft_amplitude_loss", "FFTAmplitudeLoss", "ssim", "ssim_loss", "SSIMLoss", "ms_ssim", "ms_ssim_loss",
    "ms_ssim_scales", "MSSSIMLoss", "MS_SSIM_WEIGHTS", "gradient_loss", "GradientLoss",
    # perceptual
    "VGG19_LAYERS", "VGG19Features", "load_vgg19_state_dict", "perceptual_loss", "PerceptualLoss",
    # adversarial
    "GAN_KINDS", "PatchDiscriminator", "ResidualDiscriminator", "build_discriminator", "generator_loss",
    "discriminator_loss", "GANLoss", "AdversarialLoss",
    # feature distillation
    "info_nce", "ProjectionHead", "ContrastiveDistillationLoss", "attention_map",
    "attention_distillation_loss", "AttentionDistillationLoss",
    # zero-reference (Zero-DCE)
    "spatial_consistency_loss", "SpatialConsistencyLoss", "exposure_control_loss", "ExposureControlLoss",
    "color_constancy_loss", "ColorConstancyLoss", "illumination_smoothness_loss", "IlluminationSmoothnessLoss",
    "ZeroReferenceLoss",
    # temporal
    "random_affine", "warp", "valid_mask", "temporal_consistency_loss", "TemporalConsistencyLoss",
    # composition and registry
    "HybridLoss", "WeightedLoss", "LOSSES", "build_loss", "list_losses",
]
