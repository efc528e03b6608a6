"""Train a teacher on ground truth: ``python -m training.teacher --config PRESET --data DIR --out DIR``.

    python -m training.teacher --config li2022 --data LOL/our485 --out runs/li_teacher
    python -m training.teacher --config compact_clarity --teacher mirnet_v2 --data DIR --out runs/cc_mirnet

The preset's ``teacher_training.<name>`` section is the recipe. The best (EMA) teacher is exported to
``OUT/best.pt`` (self-describing checkpoint); point the preset's ``teachers.<name>.weights`` at it.
"""

from __future__ import annotations

import sys
from typing import Sequence

from .engine.cli import main as _main


def main(argv: Sequence[str] | None = None) -> int:
    return _main(argv, "teacher")


if __name__ == "__main__":
    sys.exit(main())
