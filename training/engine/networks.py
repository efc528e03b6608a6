"""Building the trained network and the frozen teachers from a preset, and reading their features."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from lowlight_rt.errors import InputError, ModelError
from lowlight_rt.models import EnhancementModel, create_model, load_checkpoint

from .config import resolve_path

log = logging.getLogger("training")


def build_network(spec: dict[str, Any]) -> EnhancementModel:
    """``spec = {arch: NAME, config: {...}, init: PATH|null, init_new: [PREFIX, ...]}`` -> the network.

    ``init`` loads starting weights: a lowlight-rt checkpoint of the same architecture, or any file
    :func:`training.teachers.load_teacher` reads (e.g. the official Zero-DCE ``Epoch99.pth``). Every
    tensor must match, except those whose names start with an ``init_new`` prefix: parts the config
    adds to the initial network (e.g. ``keep_gate``), which keep their fresh initialisation.
    """
    import training.teachers  # noqa: F401 - registers the teacher architectures

    if not isinstance(spec, dict) or "arch" not in spec:
        raise InputError("the preset's model section needs 'arch' (a registered architecture name)")
    model = create_model(spec["arch"], **(spec.get("config") or {}))
    init = resolve_path(spec.get("init"))
    if init is not None:
        from training.teachers import load_teacher

        if not init.is_file():
            raise InputError(f"initial weights not found: {init}")
        source = load_teacher(init, frozen=False)
        if source.arch_name != model.arch_name:
            raise ModelError(f"{init} holds a {source.arch_name!r} network, not {model.arch_name!r}")
        new = tuple(spec.get("init_new") or ())
        state = source.state_dict()
        if new:
            state = {**{k: v for k, v in model.state_dict().items() if k.startswith(new)},
                     **{k: v for k, v in state.items() if not k.startswith(new)}}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelError(f"{init}: weights do not match {model.arch_name} {model.config} "
                             f"({str(e).splitlines()[0]})") from e
        log.info("initialised %s from %s%s", model.arch_name, init, f" (new: {', '.join(new)})" if new else "")
    return model


def select(feats: Sequence[torch.Tensor] | torch.Tensor, layers: Sequence[int] | None) -> list[torch.Tensor]:
    """Pick feature maps by index (``None``: all of them)."""
    feats = [feats] if isinstance(feats, torch.Tensor) else list(feats)
    if layers is None:
        return feats
    try:
        return [feats[i] for i in layers]
    except IndexError:
        raise InputError(f"feature layer index out of range {list(layers)}: the network has {len(feats)} maps") from None


class Trainee(nn.Module):
    """What the loop (and DDP) calls: ``forward(x) -> (out, feats, curves)``.

    ``feats`` is the network's ``forward_features`` list when ``want_feats`` (else empty); ``curves``
    the curve maps of a Zero-DCE-like network (``forward_with_curves``), else ``None``.
    """

    def __init__(self, model: EnhancementModel, want_feats: bool = False) -> None:
        super().__init__()
        self.model = model
        self.want_feats = bool(want_feats) and hasattr(model, "forward_features")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        if self.want_feats:
            out, feats = self.model.forward_features(x)
            return out, list(feats), None
        if hasattr(self.model, "forward_with_curves"):
            out, curves = self.model.forward_with_curves(x)
            return out, [], curves
        return self.model(x), [], None


@dataclass
class Teacher:
    """A frozen teacher: its network and which batch keys its output / features fill."""

    name: str
    model: EnhancementModel
    output_key: str = "teacher"
    feats_key: str | None = "teacher_feats"
    layers: list[int] | None = None
    trained: bool = True
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def build_teachers(cfg: dict[str, Any] | None, *, smoke: bool) -> list[Teacher]:
    """Frozen teachers from the preset's ``teachers:`` mapping ``{name: {arch, config, weights,
    output_key, feats_key, layers, cache}}`` (``cache: true``: outputs come from the data pipeline's
    teacher-output cache, computed once per training image). ``weights`` is a checkpoint path or ``official`` (the shared
    official weights, e.g. Zero-DCE). Without weights a teacher is refused, except under ``--smoke``
    where an untrained teacher exercises the plumbing (logged)."""
    from training.teachers import create_teacher, load_teacher

    teachers: list[Teacher] = []
    for name, spec in (cfg or {}).items():
        spec = dict(spec or {})
        arch = spec.get("arch", name)
        weights = spec.get("weights")
        config = dict(spec.get("config") or {})
        if weights in (None, ""):
            if not smoke:
                raise InputError(f"teacher {name!r} has no weights: train it first (python -m training.teacher "
                                 f"--config PRESET --teacher {name} ...) and pass --teacher-weights {name}=PATH")
            model = create_teacher(arch, **config)
            log.warning("smoke run: teacher %s is untrained (plumbing check only)", name)
            trained, source = False, "untrained (smoke)"
        elif weights == "official":
            model = load_teacher(arch, **config)
            trained, source = True, f"official {arch} weights"
        else:
            path = resolve_path(weights)
            if path is None or not path.is_file():
                raise InputError(f"teacher {name!r}: weights file not found: {weights} (train it with python -m "
                                 f"training.teacher --teacher {name}, or pass --teacher-weights {name}=PATH)")
            try:
                model = load_checkpoint(path)[0]
            except ModelError:
                model = load_teacher(path, **config)
            trained, source = True, str(path)
        model.eval().requires_grad_(False)
        teachers.append(Teacher(name=name, model=model, output_key=spec.get("output_key", "teacher"),
                                feats_key=spec.get("feats_key", "teacher_feats"), layers=spec.get("layers"),
                                trained=trained, source=source, extra={"cache": bool(spec.get("cache", False))}))
    keys = [t.output_key for t in teachers]
    if len(set(keys)) != len(keys):
        raise InputError(f"two teachers write the same output_key: {keys}")
    return teachers
