"""Contrastive (InfoNCE) feature distillation with projection heads.

Student and teacher feature maps (any channel counts, any spatial sizes) are average-pooled to a
common grid (or globally), projected by small trainable heads (1x1 conv - ReLU - 1x1 conv) into a
shared ``dim``-dimensional space and L2-normalised. The positive of a student embedding is the teacher embedding of the same sample (and,
in ``"position"`` mode, the same location); every other teacher embedding in the batch is a negative.
The projection heads belong to the loss: optimise them together with the student.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_image

__all__ = ["info_nce", "ProjectionHead", "ContrastiveDistillationLoss"]


def info_nce(query: torch.Tensor, key: torch.Tensor, tau: float = 0.1, symmetric: bool = False) -> torch.Tensor:
    """InfoNCE over matched rows: ``query[i]``'s positive is ``key[i]``, the other rows are negatives.

    Args:
        query: ``(N, D)`` float embeddings (normalised here).
        key: ``(N, D)`` float embeddings (normalised here).
        tau: temperature > 0; smaller is sharper.
        symmetric: average the query->key and key->query directions.
    Returns:
        scalar >= 0; lower when matched rows are more similar than mismatched ones. With ``N``
        rows its value for uninformative embeddings is about ``log(N)``.
    """
    if query.ndim != 2 or key.ndim != 2 or query.shape != key.shape:
        raise ValueError(f"query and key must both be (N, D) with the same shape, got "
                         f"{tuple(query.shape)} and {tuple(key.shape)}")
    if query.shape[0] < 2:
        raise ValueError("InfoNCE needs at least 2 embeddings (one positive and one negative)")
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    logits = q @ k.t() / tau
    labels = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), labels))
    return loss


class ProjectionHead(nn.Module):
    """``(B, C_in, H, W)`` -> ``(B, dim, H, W)``: 1x1 conv - ReLU - 1x1 conv."""

    def __init__(self, in_channels: int, dim: int = 128, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(dim, in_channels)
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, dim, 1))
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "features", self.in_channels)
        return self.net(x)


class ContrastiveDistillationLoss(nn.Module):
    """InfoNCE distillation from teacher features to student features.

    Args:
        student_channels: channels of the student feature map.
        teacher_channels: channels of the teacher feature map.
        dim: embedding size of the projection heads.
        tau: InfoNCE temperature.
        mode: ``"position"`` (default): each spatial position of each sample is an embedding; both maps
            are average-pooled to a common grid of at most ``grid x grid`` cells, negatives are the
            other positions of all samples (works with a batch of 1). ``"sample"``: one globally
            pooled embedding per sample, negatives are the other samples (needs a batch >= 2).
        grid: largest pooled grid side in ``"position"`` mode (bounds the ``N x N`` logits).
        max_positions: randomly keep at most this many positions (``None``: all).
        symmetric: also contrast teacher -> student.
        layer: which map to use when ``forward`` receives lists of feature maps (default the last).

    ``forward(student_feats, teacher_feats)``: ``(B, Cs, Hs, Ws)`` and ``(B, Ct, Ht, Wt)`` float, or lists
    of maps (then ``layer`` picks one); the teacher's are detached, the teacher head still learns
    -> scalar >= 0.
    """

    input_keys: ClassVar[tuple[str, ...]] = ("student_feats", "teacher_feats")

    def __init__(self, student_channels: int, teacher_channels: int, dim: int = 128, tau: float = 0.1,
                 mode: str = "position", grid: int = 8, max_positions: int | None = 1024,
                 symmetric: bool = False, layer: int = -1) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.mode = check_choice(mode, ("position", "sample"), "mode")
        self.student_head = ProjectionHead(student_channels, dim)
        self.teacher_head = ProjectionHead(teacher_channels, dim)
        self.tau, self.grid, self.max_positions, self.symmetric = float(tau), int(grid), max_positions, symmetric
        self.layer = int(layer)

    def _pool(self, s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool both maps to the common embedding grid (1x1 in ``"sample"`` mode)."""
        if self.mode == "sample":
            h = w = 1
        else:
            h = min(s.shape[2], t.shape[2], self.grid)
            w = min(s.shape[3], t.shape[3], self.grid)
        return F.adaptive_avg_pool2d(s, (h, w)), F.adaptive_avg_pool2d(t, (h, w))

    @staticmethod
    def _rows(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])

    def forward(self, student_feats: torch.Tensor | Sequence[torch.Tensor],
                teacher_feats: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if not isinstance(student_feats, torch.Tensor):
            student_feats = list(student_feats)[self.layer]
        if not isinstance(teacher_feats, torch.Tensor):
            teacher_feats = list(teacher_feats)[self.layer]
        check_image(student_feats, "student_feats")
        check_image(teacher_feats, "teacher_feats")
        if student_feats.shape[0] != teacher_feats.shape[0]:
            raise ValueError(f"student and teacher batches differ: {student_feats.shape[0]} vs "
                             f"{teacher_feats.shape[0]}")
        s_pooled, t_pooled = self._pool(student_feats, teacher_feats.detach())
        q, k = self._rows(self.student_head(s_pooled)), self._rows(self.teacher_head(t_pooled))
        if self.max_positions is not None and q.shape[0] > self.max_positions:
            keep = torch.randperm(q.shape[0], device=q.device)[: self.max_positions]
            q, k = q[keep], k[keep]
        return info_nce(q, k, self.tau, self.symmetric)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, mode={self.mode!r}, grid={self.grid}"
