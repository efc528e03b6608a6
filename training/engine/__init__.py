"""The training engine shared by ``training.distill`` and ``training.teacher``.

- :mod:`.config`: presets (YAML), ``--smoke`` overrides, teacher recipes.
- :mod:`.networks`: the trained network, frozen teachers, feature selection.
- :mod:`.loaders`: datasets from a preset via :mod:`training.data` (+ teacher-output cache).
- :mod:`.optim`: optimisers and LR schedules; :mod:`.ema`: weight averaging.
- :mod:`.loop`: :class:`Trainer` (AMP, accumulation, DDP, validation, export, resume).
- :mod:`.metrics`, :mod:`.logs`, :mod:`.state`, :mod:`.sampler`: metrics, logs, saved state, resumable sampling.
"""

from .config import list_presets, load_preset, teacher_recipe
from .loop import Trainer

__all__ = ["Trainer", "list_presets", "load_preset", "teacher_recipe"]
