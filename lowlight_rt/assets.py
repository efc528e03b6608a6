"""Locate the files shipped in the top-level ``assets/`` folder (demo clip, trained weights).

Search order: ``$LOWLIGHT_RT_ASSETS``; the ``assets/`` folder of the source checkout this package
runs from (a checkout or an editable install); ``<prefix>/share/lowlight-rt/assets``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "LOWLIGHT_RT_ASSETS"


def _candidates() -> list[Path]:
    found = []
    env = os.environ.get(ENV_VAR)
    if env:
        found.append(Path(env).expanduser())
    found.append(Path(__file__).resolve().parent.parent / "assets")
    found.append(Path(sys.prefix) / "share" / "lowlight-rt" / "assets")
    return found


def assets_dir() -> Path:
    """The assets folder: the first candidate that exists (else the checkout's ``assets/`` path)."""
    candidates = _candidates()
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0] if os.environ.get(ENV_VAR) else candidates[-2]


def asset_path(*parts: str) -> Path:
    """``assets_dir() / parts...`` (the file may not exist)."""
    return assets_dir().joinpath(*parts)


def models_dir() -> Path:
    """Folder of shipped checkpoints, ``assets/models``."""
    return asset_path("models")
