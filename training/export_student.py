"""Turn a trained checkpoint into the shipped runtime checkpoint, with inference-only settings.

    python -m training.export_student runs/rt2/best.pt assets/models/realtime.pt \\
        --set detail_denoise=1.0 --set keep_from=0.22 --set keep_full=0.34 --set temporal_alpha=0.5

``--set`` changes config options that do not change the weights (operator steps applied after the
network: detail denoising, the exposure floor of the keep gate, the temporal filter). The weights
are copied unchanged (subnormals flushed, as every checkpoint write does), unless ``--mix OTHER=A``
averages them with another checkpoint of the same architecture trained from the same start
(``(1 - A) * src + A * other``, a two-model "soup": it lands between the two fine-tunes' behaviour);
the metadata keeps the training record and adds ``export`` (source file, mix, settings changed, date).

The model's operator prediction (trained layers and operator steps with the exported settings) is also
exported to ONNX and stored in the checkpoint (:mod:`training.onnx_export`, about a minute; the CPU engine
runs it through onnxruntime, ~1.3x faster than eager torch); ``--no-onnx`` leaves it out.

``src`` (and ``OTHER``) may also be a resumable training state (``last.pt``): its EMA network (else
the raw one) at the state's epoch, built from the preset the state names, with the run's record
(data, teachers, provenance) from the ``best.pt`` beside it. ``best.pt`` is the epoch that scored
best on the run's validation set, which is not always the one to ship (e.g. a fine-tune that drops a
training source its validation set still contains).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from lowlight_rt.errors import ModelError, UsageError, error_line
from lowlight_rt.models import EnhancementModel, create_model, load_checkpoint, save_checkpoint
from lowlight_rt.models.checkpoint import read_checkpoint
from training.engine.config import load_preset
from training.engine.state import STATE_FORMAT
from training.onnx_export import export_operator_onnx, has_operator_grid


def parse_setting(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` (the value read as YAML: numbers, booleans) -> ``(name, value)``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--set expects NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)


def load_trained(path: str) -> tuple[EnhancementModel, dict[str, Any]]:
    """A runtime checkpoint, or a training state's (``last.pt``) network -> ``(model, metadata)``."""
    try:
        return load_checkpoint(path)
    except ModelError:
        state = _training_state(path)
        if state is None:
            raise
    spec = load_preset(state["preset"])["model"]
    model = create_model(spec["arch"], **(spec.get("config") or {}))
    ema = state.get("ema")
    try:
        model.load_state_dict(ema["module"] if ema else state["model"], strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: the weights do not match preset {state['preset']!r} "
                         f"({str(e).splitlines()[0]})") from None
    last = (state.get("history") or [{}])[-1]
    meta = {**_run_record(path, state["preset"]), "preset": state["preset"], "role": state.get("role"),
            "epoch": state.get("epoch"), "epochs": state.get("epochs"), "global_step": state.get("global_step"),
            "ema": bool(ema), "label": f"{state['preset']} {state.get('role')} (epoch {state.get('epoch')})",
            "val_metrics": {k: float(v) for k, v in last.items() if k.startswith("val_")}}
    return model, meta


def _training_state(path: str) -> dict[str, Any] | None:
    """The training state at ``path``, or ``None`` when it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - not a training state: the caller reports the checkpoint error
        return None
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None


def _run_record(path: str, preset: str) -> dict[str, Any]:
    """The run's record (data, teachers, losses, provenance) from the ``best.pt`` beside ``path``."""
    best = Path(path).with_name("best.pt")
    try:
        record = read_checkpoint(best)["metadata"] if best.is_file() else {}
    except ModelError:
        record = {}
    if record.get("preset") != preset:
        return {}
    return {k: v for k, v in record.items() if k not in ("date", "git_revision", "num_parameters", "lowlight_rt_version")}


def export(src: str, dst: str, settings: dict[str, Any], provenance: dict[str, Any] | None = None,
           mix: tuple[str, float] | None = None, onnx: bool = True) -> dict[str, Any]:
    """Write ``src``'s network with ``settings`` applied to its config to ``dst``; returns the config.

    ``provenance``: entries that replace those of the checkpoint's ``provenance`` record (e.g. a
    description corrected after training). ``mix``: ``(other, a)``, weights ``(1 - a) src + a other``.
    ``onnx``: also store the operator prediction as ONNX (models that have an ``operator_grid``)."""
    model, meta = load_trained(src)
    if mix is not None:
        other_path, a = mix
        if not 0.0 <= a <= 1.0:
            raise UsageError(f"--mix weight must be in [0, 1], got {a}")
        other, _ = load_trained(other_path)
        ours, theirs = model.state_dict(), other.state_dict()
        if other.arch_name != model.arch_name or ours.keys() != theirs.keys() or any(
                ours[k].shape != theirs[k].shape for k in ours):
            raise UsageError(f"--mix: {other_path} is not the same network as {src}")
        model.load_state_dict({k: torch.lerp(v, theirs[k].to(v.dtype), a) if v.is_floating_point() else v
                               for k, v in ours.items()})
    unknown = sorted(set(settings) - set(model.config))
    if unknown:
        raise UsageError(f"{model.arch_name} has no option {', '.join(unknown)}")
    config = {**model.config, **settings}
    try:
        shipped = create_model(model.arch_name, **config)
    except ValueError as e:   # an option value the architecture refuses: a usage error (exit 2)
        raise UsageError(f"--set: {e}") from None
    shipped.load_state_dict(model.state_dict(), strict=True)
    if provenance:
        meta = {**meta, "provenance": {**(meta.get("provenance") or {}), **provenance}}
    blob = export_operator_onnx(shipped.eval()) if onnx and has_operator_grid(shipped) else None
    meta = {**meta, "export": {"from": src, **({"mix": {"with": mix[0], "weight": mix[1]}} if mix else {}),
                               "settings": settings, "onnx_operator": blob is not None,
                               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}
    meta.pop("git_revision", None)  # the revision that exports it (filled in by save_checkpoint)
    save_checkpoint(dst, shipped.eval(), meta, onnx_operator=blob)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export_student", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="trained checkpoint (best.pt) or training state (last.pt)")
    parser.add_argument("dst", help="runtime checkpoint to write (e.g. assets/models/realtime.pt)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="config option to change (repeatable)")
    parser.add_argument("--provenance", action="append", default=[], metavar="KEY=VALUE",
                        help="replace an entry of the checkpoint's provenance record (repeatable)")
    parser.add_argument("--mix", metavar="OTHER=WEIGHT", default=None,
                        help="average the weights with another checkpoint of the same network: (1-W) src + W other")
    parser.add_argument("--no-onnx", action="store_true",
                        help="do not store the operator prediction as ONNX (the CPU engine then runs it in torch)")
    args = parser.parse_args(argv)
    try:
        mix = None
        if args.mix is not None:
            other, _, weight = args.mix.rpartition("=")   # the path may hold '=', the weight does not
            try:
                mix = (other, float(weight)) if other else None
            except ValueError:
                pass
            if mix is None:
                raise UsageError(f"--mix expects OTHER=WEIGHT with a number, got {args.mix!r}")
        config = export(args.src, args.dst, dict(parse_setting(s) for s in args.set),
                        dict(parse_setting(s) for s in args.provenance), mix, onnx=not args.no_onnx)
    except Exception as exc:  # noqa: BLE001 - one line, like the runtime
        print(error_line("python -m training.export_student", exc), file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"wrote {args.dst}: {config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
