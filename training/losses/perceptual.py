"""VGG19 perceptual loss, from VGG19 weights the user has on disk (nothing is downloaded).

:class:`VGG19Features` rebuilds torchvision's ``vgg19().features`` in plain torch with the same
parameter names (``features.N.weight`` / ``features.N.bias``), so torchvision's ImageNet file
(``vgg19-dcbb9e9d.pth``; its ``classifier.*`` entries are ignored) loads unchanged. Layers are named
like the literature: ``conv1_1``, ``relu1_1``, ..., ``relu5_4``, ``pool5``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lowlight_rt.errors import ModelError

from ._checks import check_choice, check_pair

__all__ = ["VGG19_LAYERS", "VGG19Features", "load_vgg19_state_dict", "PerceptualLoss", "perceptual_loss"]

# torchvision's configuration "E" (VGG19): channel counts, "M" = 2x2 max pooling
_VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> dict[str, int]:
    names: dict[str, int] = {}
    block, conv, index = 1, 1, 0
    for item in _VGG19_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index += 1
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
            conv += 1
    return names


#: layer name -> index in ``features`` (e.g. ``relu1_1`` -> 1, ``relu5_4`` -> 35)
VGG19_LAYERS: dict[str, int] = _layer_names()

_NO_WEIGHTS = ("the VGG19 perceptual loss needs VGG19 weights on disk: pass weights=PATH to torchvision's "
               "vgg19-dcbb9e9d.pth (nothing is downloaded), or drop the perceptual term")


def load_vgg19_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the ``features.*`` tensors of a torchvision-style VGG19 state dict; raises ModelError."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"VGG19 weights not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or non-torch file
        raise ModelError(f"cannot read VGG19 weights {p}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelError(f"{p} is not a VGG19 state dict (got {type(obj).__name__})")
    feats = {k: v for k, v in obj.items() if isinstance(k, str) and k.startswith("features.")}
    if not feats:
        raise ModelError(f"{p} has no 'features.*' tensors: not a torchvision VGG19 state dict")
    return feats


class VGG19Features(nn.Module):
    """Frozen VGG19 feature extractor (torchvision layout) returning the requested layers.

    Args:
        weights: path to a torchvision VGG19 state dict (``features.N.weight``); required.
        layers: layer names to return (see :data:`VGG19_LAYERS`); the network is truncated after the
            deepest one.
        normalize_input: apply ImageNet mean/std normalisation to inputs in [0, 1].

    ``forward(x)``: ``(B, 3, H, W)`` float in [0, 1] -> ``dict[name, (B, C_l, H_l, W_l)]``.
    """

    def __init__(self, weights: str | os.PathLike[str] | None,
                 layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
                 normalize_input: bool = True) -> None:
        super().__init__()
        if weights is None or str(weights) == "":
            raise ModelError(_NO_WEIGHTS)
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG19 layer(s) {unknown or list(layers)}; "
                             f"choose from conv1_1 .. relu5_4, pool1 .. pool5")
        self.layers = tuple(layers)
        last = max(VGG19_LAYERS[name] for name in self.layers)
        modules: list[nn.Module] = []
        in_ch = 3
        for item in _VGG19_CFG:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*modules[: last + 1])
        state = load_vgg19_state_dict(weights)
        wanted = self.features.state_dict()
        missing = [k for k in (f"features.{n}" for n in wanted) if k not in state]
        if missing:
            raise ModelError(f"{weights} lacks VGG19 tensors such as {missing[0]}: not a VGG19 state dict")
        for name, tensor in wanted.items():
            got = state[f"features.{name}"]
            if tuple(got.shape) != tuple(tensor.shape):
                raise ModelError(f"{weights}: features.{name} has shape {tuple(got.shape)}, "
                                 f"VGG19 expects {tuple(tensor.shape)}")
        self.features.load_state_dict({n: state[f"features.{n}"] for n in wanted})
        self.normalize_input = bool(normalize_input)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        """Always stays in eval mode (frozen)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19 input must have shape (B, 3, H, W), got {tuple(x.shape)}")
        if self.normalize_input:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = {VGG19_LAYERS[name]: name for name in self.layers}
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def perceptual_loss(extractor: VGG19Features, pred: torch.Tensor, target: torch.Tensor,
                    layer_weights: Mapping[str, float] | None = None, criterion: str = "l1") -> torch.Tensor:
    """Weighted sum over layers of the L1 / MSE distance between VGG19 features.

    Args:
        extractor: a :class:`VGG19Features`.
        pred, target: ``(B, 3, H, W)`` float in [0, 1]; the target's features carry no gradient.
        layer_weights: name -> weight (default: 1 for every layer of the extractor).
        criterion: ``"l1"`` | ``"mse"``.
    Returns:
        scalar >= 0, zero for identical inputs.
    """
    check_pair(pred, target, channels=3)
    check_choice(criterion, ("l1", "mse"), "criterion")
    weights = dict(layer_weights) if layer_weights is not None else {n: 1.0 for n in extractor.layers}
    fp = extractor(pred)
    with torch.no_grad():
        ft = extractor(target)
    dist = F.l1_loss if criterion == "l1" else F.mse_loss
    total = pred.new_zeros(())
    for name, w in weights.items():
        total = total + w * dist(fp[name], ft[name])
    return total


class PerceptualLoss(nn.Module):
    """VGG19 perceptual loss. Raises :class:`ModelError` (one line) when ``weights`` is not given.

    Args:
        weights: path to torchvision's VGG19 weights (``vgg19-dcbb9e9d.pth``) on disk.
        layers: ``name -> weight`` mapping, or a list of names (weight 1 each).
        criterion: ``"l1"`` | ``"mse"``.

    ``forward(pred, target)``: ``(B, 3, H, W)`` float in [0, 1] -> scalar >= 0.
    """

    input_keys: ClassVar[tuple[str, ...]] = ("pred", "target")

    def __init__(self, weights: str | os.PathLike[str] | None = None,
                 layers: Mapping[str, float] | Sequence[str] = ("relu1_2", "relu2_2", "relu3_4",
                                                                "relu4_4", "relu5_4"),
                 criterion: str = "l1", normalize_input: bool = True) -> None:
        super().__init__()
        self.layer_weights = ({str(k): float(v) for k, v in layers.items()} if isinstance(layers, Mapping)
                              else {str(k): 1.0 for k in layers})
        self.criterion = check_choice(criterion, ("l1", "mse"), "criterion")
        self.vgg = VGG19Features(weights, tuple(self.layer_weights), normalize_input)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return perceptual_loss(self.vgg, pred, target, self.layer_weights, self.criterion)

    def extra_repr(self) -> str:
        return f"layers={self.layer_weights}, criterion={self.criterion!r}"
