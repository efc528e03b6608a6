"""Resolution-progressive training schedule with a known effective batch.

Small crops early (many per batch, cheap), large crops late (few per batch, more context), e.g.
64 px x 32 -> 128 px x 16 -> 256 px x 4. Gradient accumulation keeps the number of examples per
optimiser step (the effective batch) constant across stages, or as each stage states.

    >>> s = ProgressiveSchedule([(1, 64, 32), (41, 128, 16), (81, 256, 4)], effective_batch=32)
    >>> s.at(50)
    Stage(epoch=41, crop=128, batch=16, accumulation=2)
    >>> s.at(50).effective_batch
    32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = ["ProgressiveSchedule", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One stage, active from ``epoch`` (1-based) until the next stage starts."""

    epoch: int
    crop: int
    batch: int
    accumulation: int = 1

    @property
    def effective_batch(self) -> int:
        """Examples per optimiser step: ``batch * accumulation``."""
        return self.batch * self.accumulation


class ProgressiveSchedule:
    """Crop, micro-batch and accumulation steps for every epoch.

    Args:
        stages: ``(epoch_start, crop, batch)`` tuples, ``(epoch_start, crop, batch, accumulation)``
            tuples or dicts with those keys (``epoch`` / ``epoch_start``); epochs are 1-based, the
            first stage is extended back to epoch 1.
        effective_batch: examples per optimiser step for every stage: each stage accumulates
            ``effective_batch / batch`` micro-batches (must divide evenly). ``None``: each stage uses
            its own ``accumulation`` (default 1).
    """

    def __init__(self, stages: Sequence[Any], effective_batch: int | None = None) -> None:
        parsed = [self._parse(s) for s in stages]
        if not parsed:
            raise ValueError("a progressive schedule needs at least one stage")
        parsed.sort(key=lambda s: s.epoch)
        if len({s.epoch for s in parsed}) != len(parsed):
            raise ValueError(f"two stages start at the same epoch: {[s.epoch for s in parsed]}")
        if effective_batch is not None:
            eb = int(effective_batch)
            fixed = []
            for s in parsed:
                if eb % s.batch:
                    raise ValueError(f"effective batch {eb} is not a multiple of stage batch {s.batch} (epoch {s.epoch})")
                fixed.append(Stage(s.epoch, s.crop, s.batch, eb // s.batch))
            parsed = fixed
        self.effective_batch = effective_batch
        self.stages: list[Stage] = parsed

    @staticmethod
    def _parse(spec: Any) -> Stage:
        if isinstance(spec, Stage):
            return spec
        if isinstance(spec, dict):
            epoch = spec.get("epoch", spec.get("epoch_start", 1))
            stage = Stage(int(epoch), int(spec["crop"]), int(spec["batch"]), int(spec.get("accumulation", 1)))
        else:
            vals = [int(v) for v in spec]
            if len(vals) not in (3, 4):
                raise ValueError(f"a stage is (epoch_start, crop, batch[, accumulation]), got {spec!r}")
            stage = Stage(*vals)
        if stage.epoch < 1 or stage.crop < 1 or stage.batch < 1 or stage.accumulation < 1:
            raise ValueError(f"stage values must be positive (epochs are 1-based): {stage}")
        return stage

    @classmethod
    def from_config(cls, cfg: Iterable[dict[str, Any]], effective_batch: int | None = None) -> "ProgressiveSchedule":
        """From a preset's ``progressive:`` list of ``{epoch, crop, batch[, accumulation]}``."""
        return cls(list(cfg), effective_batch)

    def at(self, epoch: int) -> Stage:
        """The stage active in (1-based) ``epoch``."""
        active = self.stages[0]
        for s in self.stages:
            if s.epoch <= epoch:
                active = s
        return active

    def __call__(self, epoch: int) -> tuple[int, int, int]:
        """``(crop, micro_batch, accumulation)`` for ``epoch``."""
        s = self.at(epoch)
        return s.crop, s.batch, s.accumulation

    def boundaries(self) -> list[int]:
        """Epochs at which a new stage starts (after the first)."""
        return [s.epoch for s in self.stages[1:]]

    def describe(self) -> str:
        """One line, e.g. ``e1: 64px x32 (acc 1, eff 32) -> e41: 128px x16 (acc 2, eff 32)``."""
        return " -> ".join(f"e{s.epoch}: {s.crop}px x{s.batch} (acc {s.accumulation}, eff {s.effective_batch})"
                           for s in self.stages)

    def __repr__(self) -> str:
        return f"ProgressiveSchedule({self.describe()})"
