"""Train a student by distillation: ``python -m training.distill --config PRESET --data DIR --out DIR``.

    python -m training.distill --config realtime --data ../shared/data/ir-rgb --out runs/rt
    python -m training.distill --config li2022 --data LOL/our485 --val LOL/eval15 --out runs/li
    python -m training.distill --config zero_dce --data ../shared/data/sice-part1 --out runs/zdce --smoke
    torchrun --nproc_per_node 2 -m training.distill --config realtime --data DIR --out runs/rt  # DDP

Writes ``best.pt`` (the best EMA student, runtime checkpoint format: ``lowlight-rt --model best.pt``),
``last.pt`` (resumable state; ``--resume``), ``history.csv``, ``history.png`` and ``tb/``.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .engine.cli import main as _main


def main(argv: Sequence[str] | None = None) -> int:
    return _main(argv, "student")


if __name__ == "__main__":
    sys.exit(main())
