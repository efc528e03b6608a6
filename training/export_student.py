"""Turn a trained checkpoint into the shipped runtime checkpoint, with inference-only settings.

    python -m training.export_student runs/rt2/best.pt assets/models/realtime.pt \\
        --set detail_denoise=1.0 --set keep_from=0.22 --set keep_full=0.34 --set temporal_alpha=0.5

``--set`` changes config options that do not change the weights (operator steps applied after the
network: detail denoising, the exposure floor of the keep gate, the temporal filter). The weights
are copied unchanged (subnormals flushed, as every checkpoint write does); the metadata keeps the
training record and adds ``export`` (source file, settings changed, date).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, Sequence

import yaml

from lowlight_rt.errors import UsageError, error_line
from lowlight_rt.models import create_model, load_checkpoint, save_checkpoint


def parse_setting(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` (the value read as YAML: numbers, booleans) -> ``(name, value)``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--set expects NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)


def export(src: str, dst: str, settings: dict[str, Any], provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``src``'s network with ``settings`` applied to its config to ``dst``; returns the config.

    ``provenance``: entries that replace those of the checkpoint's ``provenance`` record (e.g. a
    description corrected after training)."""
    model, meta = load_checkpoint(src)
    unknown = sorted(set(settings) - set(model.config))
    if unknown:
        raise UsageError(f"{model.arch_name} has no option {', '.join(unknown)}")
    config = {**model.config, **settings}
    shipped = create_model(model.arch_name, **config)
    shipped.load_state_dict(model.state_dict(), strict=True)
    if provenance:
        meta = {**meta, "provenance": {**(meta.get("provenance") or {}), **provenance}}
    meta = {**meta, "export": {"from": src, "settings": settings,
                               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}
    meta.pop("git_revision", None)  # the revision that exports it (filled in by save_checkpoint)
    save_checkpoint(dst, shipped.eval(), meta)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export_student", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="trained checkpoint (best.pt)")
    parser.add_argument("dst", help="runtime checkpoint to write (e.g. assets/models/realtime.pt)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="config option to change (repeatable)")
    parser.add_argument("--provenance", action="append", default=[], metavar="KEY=VALUE",
                        help="replace an entry of the checkpoint's provenance record (repeatable)")
    args = parser.parse_args(argv)
    try:
        config = export(args.src, args.dst, dict(parse_setting(s) for s in args.set),
                        dict(parse_setting(s) for s in args.provenance))
    except Exception as exc:  # noqa: BLE001 - one line, like the runtime
        print(error_line("python -m training.export_student", exc), file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"wrote {args.dst}: {config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
