"""Attention-map distillation (Zagoruyko & Komodakis): match normalised channel-summed |F|^p maps."""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_image

__all__ = ["attention_map", "attention_distillation_loss", "AttentionDistillationLoss"]


def attention_map(feats: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Spatial attention of a feature map: ``sum_c |F_c|^p``.

    Args:
        feats: ``(B, C, H, W)`` float.
        p: exponent > 0.
    Returns:
        ``(B, 1, H, W)`` float >= 0 (not normalised).
    """
    check_image(feats, "features")
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    return feats.float().abs().pow(p).sum(dim=1, keepdim=True)


def _one_pair(s: torch.Tensor, t: torch.Tensor, p: float) -> torch.Tensor:
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"student and teacher batches differ: {s.shape[0]} vs {t.shape[0]}")
    a_s, a_t = attention_map(s, p), attention_map(t.detach(), p)
    if a_t.shape[-2:] != a_s.shape[-2:]:
        a_t = F.interpolate(a_t, size=a_s.shape[-2:], mode="bilinear", align_corners=False)
    a_s = F.normalize(a_s.flatten(1), dim=1)
    a_t = F.normalize(a_t.flatten(1), dim=1)
    return (a_s - a_t).pow(2).sum(dim=1).mean()


def attention_distillation_loss(student_feats: torch.Tensor | Sequence[torch.Tensor],
                                teacher_feats: torch.Tensor | Sequence[torch.Tensor],
                                p: float = 2.0) -> torch.Tensor:
    """Squared L2 distance between L2-normalised attention maps, averaged over batch and layer pairs.

    Channel counts may differ (maps are channel-summed); when spatial sizes differ the teacher's map
    is resized (bilinear) to the student's.

    Args:
        student_feats: ``(B, Cs, Hs, Ws)`` or a list of them.
        teacher_feats: ``(B, Ct, Ht, Wt)`` or a list of the same length (detached).
        p: exponent of ``|F|``.
    Returns:
        scalar in [0, 2] (maps are non-negative unit vectors), zero for identical maps.
    """
    s_list = [student_feats] if isinstance(student_feats, torch.Tensor) else list(student_feats)
    t_list = [teacher_feats] if isinstance(teacher_feats, torch.Tensor) else list(teacher_feats)
    if len(s_list) != len(t_list) or not s_list:
        raise ValueError(f"need the same non-zero number of student and teacher feature maps, got "
                         f"{len(s_list)} and {len(t_list)}")
    return torch.stack([_one_pair(s, t, p) for s, t in zip(s_list, t_list)]).mean()


class AttentionDistillationLoss(nn.Module):
    """Module form of :func:`attention_distillation_loss`. ``forward(student_feats, teacher_feats)``."""

    input_keys: ClassVar[tuple[str, ...]] = ("student_feats", "teacher_feats")

    def __init__(self, p: float = 2.0) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"p must be positive, got {p}")
        self.p = float(p)

    def forward(self, student_feats: torch.Tensor | Sequence[torch.Tensor],
                teacher_feats: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return attention_distillation_loss(student_feats, teacher_feats, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
