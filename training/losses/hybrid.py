"""A weighted sum of named loss terms, built from a dict (YAML presets) and logged per term.

Each term is an ``nn.Module`` whose ``forward`` takes positional tensors named by its
``input_keys`` (e.g. ``("pred", "target")``). :class:`HybridLoss` calls each term with the entries
of one *batch* dict. The conventional keys:

=================  ==========================================================================
``pred``           the network's output, ``(B, 3, H, W)`` in [0, 1]
``target``         ground truth, ``(B, 3, H, W)`` in [0, 1]
``input``          the low-light input, ``(B, 3, H, W)`` in [0, 1]
``teacher``        the teacher's output, ``(B, 3, H, W)`` in [0, 1]
``student_feats``  student feature map(s), ``(B, Cs, Hs, Ws)`` or a list
``teacher_feats``  teacher feature map(s), ``(B, Ct, Ht, Wt)`` or a list
``curves``         curve maps of a Zero-DCE-like model, ``(B, 3n, H, W)``
``model``          the network itself (the temporal-consistency term calls it)
=================  ==========================================================================

A term's keys can be remapped with ``inputs`` (e.g. ``ms_ssim`` against the teacher:
``inputs: [pred, teacher]``).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from lowlight_rt.errors import InputError, ModelError

from .registry import build_loss

__all__ = ["HybridLoss", "WeightedLoss"]


class HybridLoss(nn.Module):
    """``total = sum_i w_i * term_i(batch)``; terms with weight 0 are not computed.

    Args:
        terms: name -> loss module (with ``input_keys``).
        weights: name -> weight (default 1 for terms not listed).
        inputs: name -> batch keys passed positionally (default: the module's ``input_keys``).

    ``forward(batch=None, **entries)`` -> ``(total, logs)``: ``total`` a scalar tensor, ``logs`` a
    ``dict[str, float]`` with each computed term's *unweighted* value under its name and the weighted
    sum under ``"total"``.

    Example (the ``compact_clarity`` preset)::

        loss = HybridLoss.from_config({
            "charbonnier": 0.55, "fft": 0.08, "perceptual": {"weight": 0.08, "weights": VGG_PATH},
            "ms_ssim": 0.20, "gradient": 0.15, "adversarial": {"weight": 0.001, "kind": "bce"},
            "contrastive": {"weight": 0.01, "student_channels": 64, "teacher_channels": 80}})
        total, logs = loss({"pred": out, "target": gt, "student_feats": fs, "teacher_feats": ft})
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None,
                 inputs: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__()
        if not terms:
            raise ValueError("HybridLoss needs at least one term")
        weights = dict(weights or {})
        inputs = dict(inputs or {})
        unknown = (set(weights) | set(inputs)) - set(terms)
        if unknown:
            raise ValueError(f"weights/inputs given for unknown terms: {sorted(unknown)}")
        self.terms = nn.ModuleDict(dict(terms))
        self._weights: dict[str, float] = {}
        self._keys: dict[str, tuple[str, ...]] = {}
        for name, module in terms.items():
            keys = inputs.get(name, getattr(module, "input_keys", None))
            if not keys:
                raise ValueError(f"term {name!r} has no input_keys; pass inputs={{{name!r}: [...]}}")
            self._keys[name] = tuple(keys)
            self.set_weight(name, weights.get(name, 1.0))
        #: terms dropped by :meth:`from_config` with ``missing_ok=True``: name -> reason
        self.skipped: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, float | Mapping[str, Any]], missing_ok: bool = False) -> "HybridLoss":
        """Build from ``{name: weight}`` or ``{name: {weight, type, inputs, **options}}``.

        ``type`` defaults to ``name`` (so two terms of one type can have different names); the other
        options go to :func:`~training.losses.registry.build_loss`. With ``missing_ok``, a term whose
        weights are unavailable (``ModelError``, e.g. perceptual without a VGG19 file) is dropped and
        listed in :attr:`skipped` instead of raising.
        """
        terms: dict[str, nn.Module] = {}
        weights: dict[str, float] = {}
        inputs: dict[str, Sequence[str]] = {}
        skipped: dict[str, str] = {}
        for name, spec in config.items():
            if isinstance(spec, (int, float)) and not isinstance(spec, bool):
                spec = {"weight": float(spec)}
            if not isinstance(spec, Mapping):
                raise InputError(f"loss {name!r}: expected a weight or a mapping, got {spec!r}")
            options = dict(spec)
            weight = options.pop("weight", 1.0)
            kind = options.pop("type", name)
            keys = options.pop("inputs", None)
            try:
                terms[name] = build_loss(kind, **options)
            except ModelError as exc:
                if not missing_ok:
                    raise
                skipped[name] = str(exc)
                continue
            weights[name] = float(weight)
            if keys is not None:
                inputs[name] = list(keys)
        if not terms:
            raise InputError(f"no usable loss terms in {sorted(config)} (skipped: {skipped})")
        loss = cls(terms, weights, inputs)
        loss.skipped = skipped
        return loss

    @property
    def weights(self) -> dict[str, float]:
        """A copy of name -> weight."""
        return dict(self._weights)

    def set_weight(self, name: str, weight: float) -> None:
        """Change a term's weight (e.g. 0 during a warm-up without distillation)."""
        if name not in self.terms:
            raise KeyError(f"no loss term {name!r}; terms: {list(self.terms)}")
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"weight of {name!r} must be >= 0, got {weight}")
        self._weights[name] = weight

    def input_keys_of(self, name: str) -> tuple[str, ...]:
        """The batch keys term ``name`` reads."""
        return self._keys[name]

    def forward(self, batch: Mapping[str, Any] | None = None, **entries: Any) -> tuple[torch.Tensor, dict[str, float]]:
        data = dict(batch or {})
        data.update(entries)
        total: torch.Tensor | None = None
        logs: dict[str, float] = {}
        for name, module in self.terms.items():
            weight = self._weights[name]
            if weight == 0:
                continue
            missing = [k for k in self._keys[name] if data.get(k) is None]
            if missing:
                raise KeyError(f"loss term {name!r} needs batch entries {missing}; got {sorted(data)}")
            value = module(*(data[k] for k in self._keys[name]))
            logs[name] = float(value.detach())
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ValueError("every loss term has weight 0")
        logs["total"] = float(total.detach())
        return total, logs

    def adversarial_terms(self) -> dict[str, nn.Module]:
        """Terms that own a discriminator (``discriminator_loss`` method)."""
        return {n: m for n, m in self.terms.items() if hasattr(m, "discriminator_loss")}

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters for the discriminator optimiser (empty without adversarial terms)."""
        return [p for m in self.adversarial_terms().values() for p in m.discriminator_parameters()]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Trainable loss parameters that belong with the student's optimiser (e.g. projection heads);
        excludes discriminators and frozen networks (VGG19)."""
        disc = {id(p) for p in self.discriminator_parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in disc]

    def discriminator_loss(self, batch: Mapping[str, Any] | None = None, target_key: str = "target",
                           **entries: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum of the adversarial terms' discriminator losses (``pred`` detached), for the D step.

        Uses each term's first input key as the generated image, ``target_key`` as the real one and,
        for conditional discriminators, the term's second key as the condition.
        Returns ``(loss, {"<name>_d": float})``.
        """
        data = dict(batch or {})
        data.update(entries)
        terms = self.adversarial_terms()
        if not terms:
            raise ValueError("this HybridLoss has no adversarial term")
        total: torch.Tensor | None = None
        logs: dict[str, float] = {}
        for name, module in terms.items():
            keys = self._keys[name]
            condition = data[keys[1]] if getattr(module, "conditional", False) and len(keys) > 1 else None
            value = module.discriminator_loss(data[keys[0]], data[target_key], condition)
            logs[f"{name}_d"] = float(value.detach())
            total = value if total is None else total + value
        assert total is not None
        return total, logs

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms)

    def extra_repr(self) -> str:
        return "weights=" + ", ".join(f"{n}={w:g}" for n, w in self._weights.items())


#: alias: the same class under the other common name
WeightedLoss = HybridLoss
