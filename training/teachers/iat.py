"""IAT teacher (Cui et al., "You Only Need 90K Parameters to Adapt Light: A Light Weight Transformer
for Image Enhancement and Exposure Correction", BMVC 2022).

IAT splits enhancement into two stages, the way a camera ISP does:

* a **local branch** at full resolution predicts two per-pixel maps from the input ``x``: a
  multiplicative ``mul >= 0`` (ReLU) and an additive ``add`` in (-1, 1) (tanh), giving
  ``y = x * mul + add``. It is a 3x3 stem (LeakyReLU 0.2) followed by two parallel stacks of three
  convolutional "transformer-style" blocks (depth-wise 3x3 position embedding, a depth-wise 5x5
  "attention" between 1x1 convs, a 1x1 MLP; each residual scaled per channel, with a normalisation
  that mixes channels by a learned matrix then scales and shifts them), each stack closed by a 3x3
  conv on (stack output + stem features);
* a **global branch** reads the input through two stride-2 conv+BN layers, adds a depth-wise 3x3
  position embedding, and lets 10 learned queries attend to all pixels (4 heads, no residual on the
  query side), then a LayerNorm + MLP. Query 0 gives the gamma, queries 1..9 the 3x3 colour matrix,
  each added to a learned base (``gamma_base``, ``color_base``). The output is
  ``clamp(ccm @ y, 1e-8, 1) ** gamma``.

The official code has two variants that differ only in training: ``type="lol"`` learns
``gamma_base`` while ``type="exp"`` (exposure correction) keeps it frozen at 1. Both forward passes
are identical, and both published files hold the same 161 tensors (91,154 parameters).
Parameter names follow the official release, so :func:`load_official_iat` loads it with
``strict=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lowlight_rt.errors import ModelError
from lowlight_rt.models import EnhancementModel, register_model
from lowlight_rt.models.checkpoint import read_foreign_state_dict

IATType = Literal["lol", "exp"]
IAT_TYPES: tuple[str, ...] = ("lol", "exp")

#: number of global queries: one for the gamma, nine for the 3x3 colour matrix
_NUM_QUERIES = 10


# ---------------------------------------------------------------------------------------------
# local branch
# ---------------------------------------------------------------------------------------------


class ChannelMixNorm(nn.Module):
    """Learned channel mixing then per-channel scale and shift (the paper's "colour" normalisation).

    ``y_c = alpha_c * sum_j color[c, j] * x_j + beta_c``: no statistics are computed, so it is a
    1x1 convolution whose weight is ``alpha * color``. Initialised to the identity.
    Parameters: ``alpha``, ``beta`` ``(1, 1, C)`` and ``color`` ``(C, C)`` (official layout).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, channels))
        self.color = nn.Parameter(torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        scale = self.alpha.reshape(-1, 1)
        weight = (scale * self.color)[:, :, None, None]
        return F.conv2d(x, weight, self.beta.reshape(-1))


class PointwiseMLP(nn.Module):
    """1x1 conv -> GELU -> 1x1 conv on ``(B, C, H, W)`` feature maps (``fc1``, ``fc2``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LocalBlock(nn.Module):
    """One block of the local branch; keeps ``(B, C, H, W)``.

    ``x += dw3x3(x)``; ``x += gamma_1 * conv2(dw5x5(conv1(norm1(x))))``; ``x += gamma_2 * mlp(norm2(x))``
    where ``gamma_1`` / ``gamma_2`` ``(1, C, 1, 1)`` are learned per-channel residual scales.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4.0, init_scale: float = 1e-4) -> None:
        super().__init__()
        c = channels
        self.pos_embed = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm1 = ChannelMixNorm(c)
        self.conv1 = nn.Conv2d(c, c, 1)
        self.attn = nn.Conv2d(c, c, 5, padding=2, groups=c)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.norm2 = ChannelMixNorm(c)
        self.mlp = PointwiseMLP(c, int(c * mlp_ratio))
        self.gamma_1 = nn.Parameter(torch.full((1, c, 1, 1), init_scale))
        self.gamma_2 = nn.Parameter(torch.full((1, c, 1, 1), init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.gamma_1 * self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class LocalBranch(nn.Module):
    """Predicts the per-pixel ``mul`` and ``add`` maps at full resolution (any ``H, W``).

    ``forward(x)``: ``x`` ``(B, 3, H, W)`` in [0, 1] -> ``mul`` ``(B, 3, H, W)`` >= 0 and
    ``add`` ``(B, 3, H, W)`` in (-1, 1).
    """

    def __init__(self, channels: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.mul_blocks = nn.Sequential(*[LocalBlock(channels) for _ in range(depth)])
        self.add_blocks = nn.Sequential(*[LocalBlock(channels) for _ in range(depth)])
        self.mul_end = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.ReLU())
        self.add_end = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh())

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stem features and the two stacks' outputs (each plus the stem), all ``(B, C, H, W)``."""
        stem = F.leaky_relu(self.conv1(x), 0.2)
        return stem, self.mul_blocks(stem) + stem, self.add_blocks(stem) + stem

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, mul_feat, add_feat = self.features(x)
        return self.mul_end(mul_feat), self.add_end(add_feat)


# ---------------------------------------------------------------------------------------------
# global branch
# ---------------------------------------------------------------------------------------------


class DownsampleStem(nn.Module):
    """``(B, 3, H, W)`` -> ``(B, C, ceil(H/4), ceil(W/4))``: two stride-2 3x3 convs with BatchNorm,
    GELU between them (``proj`` = conv, BN, GELU, conv, BN)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, stride=2, padding=1),
            nn.BatchNorm2d(mid),
            nn.GELU(),
            nn.Conv2d(mid, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class QueryAttention(nn.Module):
    """Multi-head cross-attention from ``num_queries`` learned queries to the image tokens.

    ``forward(tokens)``: ``(B, N, C)`` -> ``(B, num_queries, C)``. Keys and values are bias-free
    linear maps of the tokens; the learned queries ``q`` ``(1, num_queries, C)`` are used as they
    are (no projection); scaled dot product with scale ``(C / heads) ** -0.5``; output projection.
    """

    def __init__(self, dim: int, num_heads: int, num_queries: int = _NUM_QUERIES) -> None:
        super().__init__()
        if dim % num_heads:
            raise ModelError(f"IAT global width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q = nn.Parameter(torch.ones(1, num_queries, dim))
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, L, C)`` -> ``(B, heads, L, C / heads)``."""
        b, n, c = t.shape
        return t.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, _, c = tokens.shape
        q = self._split_heads(self.q.expand(b, -1, -1))
        out = F.scaled_dot_product_attention(q, self._split_heads(self.k(tokens)),
                                             self._split_heads(self.v(tokens)))
        return self.proj(out.transpose(1, 2).reshape(b, -1, c))


class TokenMLP(nn.Module):
    """Linear -> GELU -> Linear on ``(..., C)`` tokens (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class QueryDecoder(nn.Module):
    """Feature map ``(B, C, h, w)`` -> ``(B, num_queries, C)`` query embeddings.

    ``f += dw3x3(f)``; tokens = pixels of ``f``; ``z = attn(LN(tokens))`` (no residual: the queries
    are not the tokens); ``z += mlp(LN(z))``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = QueryAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TokenMLP(dim, int(dim * mlp_ratio))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = f + self.pos_embed(f)
        tokens = f.flatten(2).transpose(1, 2)
        z = self.attn(self.norm1(tokens))
        return z + self.mlp(self.norm2(z))


class GlobalBranch(nn.Module):
    """Predicts one gamma and one 3x3 colour matrix per image.

    ``forward(x)``: ``x`` ``(B, 3, H, W)`` in [0, 1] -> ``gamma`` ``(B, 1)`` (around 1) and
    ``ccm`` ``(B, 3, 3)`` (around the identity), applied as ``clamp(ccm @ rgb, 1e-8, 1) ** gamma``.
    ``gamma_base`` is trainable only with ``learn_gamma_base`` (IAT ``type="lol"``; the exposure
    variant keeps it at 1).
    """

    def __init__(self, dim: int = 64, num_heads: int = 4, learn_gamma_base: bool = True) -> None:
        super().__init__()
        self.gamma_base = nn.Parameter(torch.ones(1), requires_grad=learn_gamma_base)
        self.color_base = nn.Parameter(torch.eye(3))
        self.conv_large = DownsampleStem(3, dim)
        self.generator = QueryDecoder(dim, num_heads)
        self.gamma_linear = nn.Linear(dim, 1)
        self.color_linear = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.generator(self.conv_large(x))                       # (B, 10, dim)
        gamma = self.gamma_linear(z[:, 0]) + self.gamma_base         # (B, 1)
        ccm = self.color_linear(z[:, 1:]).reshape(-1, 3, 3) + self.color_base
        return gamma, ccm


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------


def apply_global(y: torch.Tensor, gamma: torch.Tensor, ccm: torch.Tensor) -> torch.Tensor:
    """``clamp(ccm @ y, 1e-8, 1) ** gamma`` per image.

    Args:
        y: ``(B, 3, H, W)`` locally corrected image (may leave [0, 1]).
        gamma: ``(B, 1)``.
        ccm: ``(B, 3, 3)``; output channel ``i`` is ``sum_j ccm[i, j] * y_j``.
    Returns:
        ``(B, 3, H, W)`` in [1e-8 ** gamma, 1].
    """
    mixed = torch.einsum("bij,bjhw->bihw", ccm, y).clamp(1e-8, 1.0)
    return mixed ** gamma.reshape(-1, 1, 1, 1)


@register_model("iat")
class IAT(EnhancementModel):
    """Illumination Adaptive Transformer: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1].

    Any ``H, W`` (the global branch strides by 4 with padding; no padding of the input is needed).
    ``type`` selects the official variant: ``"lol"`` (low-light, LOL-v1) or ``"exp"`` (exposure
    correction: brightens under- and darkens over-exposed inputs); it only decides whether
    ``gamma_base`` is trainable.
    """

    size_multiple = 4
    default_proc_size = 400   # LOL-v1 frames are 600x400
    needs_weights = True

    def __init__(self, type: IATType = "lol", local_channels: int = 16, local_depth: int = 3,
                 global_dim: int = 64, global_heads: int = 4) -> None:
        if type not in IAT_TYPES:
            raise ModelError(f"IAT type must be one of {', '.join(IAT_TYPES)}, not {type!r}")
        super().__init__(type=type, local_channels=local_channels, local_depth=local_depth,
                         global_dim=global_dim, global_heads=global_heads)
        self.type = type
        self.local_net = LocalBranch(local_channels, local_depth)
        self.global_net = GlobalBranch(global_dim, global_heads, learn_gamma_base=type == "lol")

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The official outputs ``(mul, add, enhanced)``.

        Args:
            x: ``(B, 3, H, W)`` float RGB in [0, 1].
        Returns:
            ``mul`` ``(B, 3, H, W)`` >= 0, ``add`` ``(B, 3, H, W)`` in (-1, 1), and ``enhanced``
            ``(B, 3, H, W)`` in (0, 1] (= ``apply_global(x * mul + add, *global_net(x))``).
        """
        mul, add = self.local_net(x)
        gamma, ccm = self.global_net(x)
        return mul, add, apply_global(x * mul + add, gamma, ccm)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Enhanced image ``(B, 3, H, W)`` in [0, 1] and the local branch's features
        ``[stem, mul stack, add stack]``, each ``(B, local_channels, H, W)``."""
        stem, mul_feat, add_feat = self.local_net.features(x)
        mul, add = self.local_net.mul_end(mul_feat), self.local_net.add_end(add_feat)
        gamma, ccm = self.global_net(x)
        return apply_global(x * mul + add, gamma, ccm).clamp(0, 1), [stem, mul_feat, add_feat]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1]."""
        return self.predict(x)[2].clamp(0, 1)


def detect_iat_type(sd: dict[str, torch.Tensor]) -> IATType:
    """Which official variant a state dict is. Both have the same keys and shapes; the exposure
    model was trained with ``gamma_base`` frozen, so it is still exactly 1 there."""
    base = sd.get("global_net.gamma_base")
    return "exp" if base is not None and base.numel() == 1 and float(base) == 1.0 else "lol"


def is_iat_state_dict(keys: Iterable[str]) -> bool:
    """True when ``keys`` (names of a state dict, ``module.`` prefix removed) look like IAT's."""
    names = set(keys)
    return {"local_net.mul_end.0.weight", "global_net.gamma_base", "global_net.generator.attn.q"} <= names


def load_official_iat(path: str | os.PathLike, type: IATType | None = None) -> IAT:
    """Build :class:`IAT` and load an official IAT weights file (e.g. ``iat_lol_v1.pth``,
    ``iat_exposure.pth``) unchanged, ``strict=True``; subnormal floats are flushed to zero.

    ``type`` (``"lol"`` / ``"exp"``) defaults to the one detected from the file
    (:func:`detect_iat_type`). Returns the model in eval mode; ``ModelError`` with one line if the
    file is unreadable or does not match the architecture.
    """
    sd = read_foreign_state_dict(path, "IAT")
    if not is_iat_state_dict(sd):
        raise ModelError(f"{path} is not an IAT state dict (no local_net.mul_end / global_net.generator weights)")
    kind = type or detect_iat_type(sd)
    model = IAT(type=kind)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        # torch's message is a header line ("Error(s) in loading state_dict for IAT:") then one line
        # per problem: report the first problem, shortened, on one line
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        first = (lines[1] if len(lines) > 1 else lines[0])[:200]
        raise ModelError(f"{path}: weights do not match IAT {kind!r} ({first})") from e
    return model.eval()
