"""Training presets: YAML files in ``training/configs`` (or any path), with a ``smoke:`` override."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lowlight_rt.errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
REPO_ROOT = Path(__file__).resolve().parents[2]


def list_presets() -> list[str]:
    """Names of the bundled presets (``training/configs/*.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset_path(spec: str | Path) -> Path:
    """Resolve ``spec`` (a YAML path or a bundled preset name) to a file; ``InputError`` if none."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    bundled = CONFIG_DIR / f"{Path(str(spec)).stem}.yaml"
    if path.suffix not in (".yaml", ".yml") and bundled.is_file():
        return bundled
    raise InputError(f"no preset {str(spec)!r}: give a YAML path or one of {', '.join(list_presets())}")


def load_preset(spec: str | Path, *, smoke: bool = False) -> dict[str, Any]:
    """Load a preset; with ``smoke=True`` its ``smoke:`` section is merged over it.

    The returned dict carries ``name`` (the preset's name) and ``smoke`` (bool); the ``smoke:``
    section itself is removed.
    """
    path = preset_path(spec)
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: a preset must be a YAML mapping")
    smoke_cfg = cfg.pop("smoke", {}) or {}
    if smoke:
        cfg = deep_merge(cfg, smoke_cfg)
    cfg.setdefault("name", path.stem)
    cfg["smoke"] = bool(smoke)
    cfg["preset_path"] = str(path)
    return cfg


def resolve_path(value: str | Path | None) -> Path | None:
    """A path from a preset: absolute, relative to the working directory, or to the repository root."""
    if value in (None, ""):
        return None
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


def teacher_recipe(cfg: dict[str, Any], teacher: str | None = None) -> tuple[str, dict[str, Any]]:
    """The config ``training.teacher`` runs: the preset's ``teacher_training[teacher]`` sections
    (``model``, ``loss``, ``optimizer``, ``scheduler``, ``discriminator_optimizer`` replace the
    top-level ones, ``data`` and ``train`` are merged into them) (default: the first listed teacher), with no frozen teachers of its own.

    Returns ``(teacher_name, config)``; ``InputError`` if the preset trains no such teacher.
    """
    recipes = cfg.get("teacher_training") or {}
    if not recipes:
        raise InputError(f"preset {cfg.get('name')!r} has no teacher_training section (nothing to train as a teacher)")
    name = teacher or next(iter(recipes))
    if name not in recipes:
        raise InputError(f"preset {cfg.get('name')!r} trains no teacher {name!r}; it has: {', '.join(recipes)}")
    recipe = recipes[name] or {}
    base = {k: v for k, v in cfg.items() if k not in ("teacher_training", "teachers", "features")}
    # the network, its loss and its optimisation are the teacher's own; data and train settings merge
    for section in ("model", "loss", "optimizer", "scheduler", "discriminator_optimizer"):
        if section in recipe:
            base.pop(section, None)
    out = deep_merge(base, recipe)
    out.setdefault("teachers", {})
    out["name"] = f"{cfg.get('name')}:{name}"
    out["teacher_name"] = name
    return name, out
