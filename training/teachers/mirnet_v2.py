"""MIRNet-v2 teacher (Zamir et al., "Learning Enriched Features for Fast Image Restoration and
Enhancement", TPAMI 2022).

``conv_in`` -> ``n_RRG`` recursive residual groups (grouped convs 1/2/4/4) -> ``conv_out`` + input.
Parameter names and shapes follow the official release, so its published enhancement checkpoint
(a BasicSR ``{"params": state_dict}`` file) loads with :func:`load_official_mirnet_v2` unchanged.
The published enhancement config (the defaults here) has 5.86M parameters in 238 tensors.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lowlight_rt.errors import ModelError
from lowlight_rt.models import EnhancementModel, register_model
from lowlight_rt.models.arch_layers import crop_to, pad_to_multiple, st_clamp01
from lowlight_rt.models.checkpoint import read_foreign_state_dict
from lowlight_rt.models.mrb import RRG, check_group_widths

#: grouped-convolution count of each recursive residual group (the official layout; extra groups use 4)
RRG_GROUPS = (1, 2, 4, 4)


@register_model("mirnet_v2")
class MIRNetV2(EnhancementModel):
    """MIRNet-v2: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any H, W (padded to 4)."""

    size_multiple = 4
    default_proc_size = 360

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, n_feat: int = 80,
                 chan_factor: float = 1.5, n_RRG: int = 4, n_MRB: int = 2, height: int = 3,
                 width: int = 2, bias: bool = False) -> None:
        super().__init__(inp_channels=inp_channels, out_channels=out_channels, n_feat=n_feat,
                         chan_factor=chan_factor, n_RRG=n_RRG, n_MRB=n_MRB, height=height,
                         width=width, bias=bias)
        groups = [RRG_GROUPS[min(i, len(RRG_GROUPS) - 1)] for i in range(n_RRG)]
        check_group_widths(n_feat, chan_factor, groups)
        self.conv_in = nn.Conv2d(inp_channels, n_feat, kernel_size=3, padding=1, bias=bias)
        self.body = nn.Sequential(*[RRG(n_feat, n_MRB, height, width, chan_factor, bias, groups=g)
                                    for g in groups])
        self.conv_out = nn.Conv2d(n_feat, out_channels, kernel_size=3, padding=1, bias=bias)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each RRG in the backward pass (saves activation memory while training)."""
        self.grad_checkpointing = enable

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the enhanced image ``(B, 3, H, W)`` in [0, 1] and the output of every RRG
        ``[(B, n_feat, H', W')] * n_RRG`` (H', W' = H, W padded to a multiple of 4)."""
        xp, size = pad_to_multiple(x, self.size_multiple)
        f = self.conv_in(xp)
        feats = []
        use_ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for rrg in self.body:
            f = checkpoint(rrg, f, use_reentrant=False) if use_ckpt else rrg(f)
            feats.append(f)
        out = self.conv_out(f) + xp
        return st_clamp01(crop_to(out, size)), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.forward_features(x)[0]


def load_official_mirnet_v2(path: str | os.PathLike, **cfg: Any) -> MIRNetV2:
    """Build :class:`MIRNetV2` (``cfg`` overrides the published enhancement config) and load an
    official checkpoint into it unchanged. Returns the model in eval mode; ``ModelError`` on failure."""
    sd = read_foreign_state_dict(path, "MIRNet-v2")
    model = MIRNetV2(**cfg)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{path}: weights do not match MIRNet-v2 {cfg or 'enhancement config'} ({first})") from e
    return model.eval()
