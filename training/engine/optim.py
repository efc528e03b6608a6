"""Optimisers and learning-rate schedules built from a preset's ``optimizer:`` / ``scheduler:`` sections."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from lowlight_rt.errors import InputError

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def build_optimizer(params: Iterable[torch.nn.Parameter] | list[dict[str, Any]], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """``cfg = {name: adam|adamw|radam|rmsprop|sgd, lr: float, weight_decay: float, betas: [b1, b2], ...}``."""
    cfg = dict(cfg or {})
    name = str(cfg.pop("name", "adam")).lower()
    if name not in _OPTIMIZERS:
        raise InputError(f"unknown optimizer {name!r}; known: {', '.join(_OPTIMIZERS)}")
    if "betas" in cfg:
        cfg["betas"] = tuple(float(b) for b in cfg["betas"])
    for key in ("lr", "weight_decay", "eps", "momentum", "alpha"):
        if key in cfg:
            cfg[key] = float(cfg[key])
    try:
        return _OPTIMIZERS[name](params, **cfg)
    except TypeError as e:
        raise InputError(f"optimizer {name!r}: {e}") from e


class Scheduler:
    """One interface over per-iteration and per-epoch schedules.

    ``cfg = {name: plateau|cosine|step|none, interval: epoch|iter, ...}``:

    - ``plateau``: ``ReduceLROnPlateau`` on the validation metric (``mode: max`` for PSNR, ``patience``,
      ``factor``, ``min_lr``); stepped once per epoch.
    - ``cosine``: cosine annealing from the base LR to ``min_lr`` over the whole run (per iteration).
    - ``step``: multiply by ``gamma`` every ``step_size`` iterations (``interval: iter``) or epochs.
    - ``none``: constant.

    ``warmup_iters`` (optional) ramps the LR linearly from ``warmup_start`` x base over the first iterations.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: dict[str, Any] | None, *, total_iters: int,
                 total_epochs: int) -> None:
        cfg = dict(cfg or {})
        self.optimizer = optimizer
        self.name = str(cfg.get("name", "none")).lower()
        self.warmup_iters = int(cfg.get("warmup_iters", 0))
        self.warmup_start = float(cfg.get("warmup_start", 0.01))
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.iteration = 0
        self.interval = "epoch"
        min_lr = float(cfg.get("min_lr", 0.0))
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.lambda_fn = None
        if self.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=cfg.get("mode", "max"), factor=float(cfg.get("factor", 0.5)),
                patience=int(cfg.get("patience", 7)), min_lr=min_lr, threshold=float(cfg.get("threshold", 1e-4)))
        elif self.name == "cosine":
            self.interval = "iter"
            span = max(1, total_iters - self.warmup_iters)

            def cosine(it: int, base: float) -> float:
                t = min(1.0, max(0, it - self.warmup_iters) / span)
                return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * t))

            self.lambda_fn = cosine
        elif self.name == "step":
            self.interval = str(cfg.get("interval", "epoch"))
            step_size = int(cfg.get("step_size", 25000 if self.interval == "iter" else 30))
            gamma = float(cfg.get("gamma", 0.5))
            self.lambda_fn = lambda it, base: base * gamma ** (it // step_size)
        elif self.name != "none":
            raise InputError(f"unknown scheduler {self.name!r}; known: plateau, cosine, step, none")
        self.epoch = 0
        self.scheduled = list(self.base_lrs)   # the plateau schedule's LR per group (before warm-up)
        self._apply()

    def _apply(self) -> None:
        counter = self.iteration if self.interval == "iter" else self.epoch
        warm = 1.0
        if self.iteration < self.warmup_iters:
            warm = self.warmup_start + (1 - self.warmup_start) * self.iteration / self.warmup_iters
        for i, (group, base) in enumerate(zip(self.optimizer.param_groups, self.base_lrs)):
            lr = self.lambda_fn(counter, base) if self.lambda_fn is not None else self.scheduled[i]
            group["lr"] = lr * warm

    def step_iter(self) -> None:
        """Call after every optimiser step."""
        self.iteration += 1
        if self.interval == "iter" or self.iteration <= self.warmup_iters:
            self._apply()

    def step_epoch(self, metric: float | None) -> None:
        """Call at the end of every epoch with the validation metric (used by ``plateau``)."""
        self.epoch += 1
        if self.plateau is not None and metric is not None and math.isfinite(metric):
            for group, lr in zip(self.optimizer.param_groups, self.scheduled):
                group["lr"] = lr
            self.plateau.step(metric)
            self.scheduled = [g["lr"] for g in self.optimizer.param_groups]
        self._apply()

    @property
    def lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "epoch": self.epoch, "scheduled": list(self.scheduled),
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.scheduled = [float(v) for v in state["scheduled"]]
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
        self._apply()
