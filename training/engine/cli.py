"""Command line shared by ``python -m training.distill`` and ``python -m training.teacher``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from lowlight_rt.errors import EXIT_INTERRUPTED, InputError, LowlightError, error_line

from ..ddp import cleanup, init_distributed
from .config import list_presets, load_preset, teacher_recipe

log = logging.getLogger("training")


def build_parser(role: str) -> argparse.ArgumentParser:
    what = "a student by distillation" if role == "student" else "a teacher on ground truth"
    p = argparse.ArgumentParser(
        prog=f"python -m training.{'distill' if role == 'student' else 'teacher'}",
        description=f"Train {what} as a preset describes (presets: {', '.join(list_presets())}). "
                    "Multi-GPU: torchrun --nproc_per_node N -m training.... (DDP; gloo on CPU).")
    p.add_argument("--config", required=True, metavar="PRESET.yaml|NAME", help="preset YAML or bundled preset name")
    p.add_argument("--data", required=True, metavar="DIR", help="training folder (paired low/ + high/, or images)")
    p.add_argument("--val", metavar="DIR", help="held-out paired folder (default: a split of --data)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (best.pt, last.pt, logs)")
    if role == "teacher":
        p.add_argument("--teacher", metavar="NAME", help="which of the preset's teachers to train (default: the first)")
    else:
        p.add_argument("--teacher-weights", action="append", default=[], metavar="NAME=PATH",
                       help="weights of the preset's teacher NAME (overrides teachers.NAME.weights; repeatable)")
    p.add_argument("--smoke", action="store_true", help="a few iterations on tiny crops with narrow networks")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    p.add_argument("--vgg19", metavar="PATH", help="VGG19 weights for perceptual terms (else they are dropped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str] | None, role: str) -> int:
    """Parse, train, and map errors to exit codes (one line on stderr); 130 after Ctrl-C (state saved)."""
    args = build_parser(role).parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        print(f"python -m training.{'distill' if role == 'student' else 'teacher'}: error: --epochs must be >= 1",
              file=sys.stderr)
        return 2
    from .loop import Trainer

    info = None
    try:
        info = init_distributed("cuda" if args.device.startswith("cuda") else "cpu")
        logging.basicConfig(level=logging.INFO if info.is_main else logging.WARNING,
                            format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        cfg = load_preset(args.config, smoke=args.smoke)
        if role == "teacher":
            _, cfg = teacher_recipe(cfg, args.teacher)
        for item in getattr(args, "teacher_weights", []):
            name, sep, path = item.partition("=")
            if not sep or name not in (cfg.get("teachers") or {}):
                raise InputError(f"--teacher-weights wants NAME=PATH with NAME one of "
                                 f"{', '.join(cfg.get('teachers') or {}) or '(no teachers)'}; got {item!r}")
            cfg["teachers"][name]["weights"] = path
        trainer = Trainer(cfg, data=args.data, val=args.val, out=args.out, device=args.device,
                          resume=args.resume, epochs=args.epochs, role=role, dist=info,
                          progress=not args.no_progress, vgg19=args.vgg19)
        result = trainer.fit()
        if info.is_main:
            best = result["best"]
            log.info("done: %d epochs, %d steps; best epoch %s %s -> %s", result["epochs"], result["global_step"],
                     best["epoch"], {k: round(v, 4) for k, v in best["metrics"].items()}, trainer.out / "best.pt")
        return 0
    except KeyboardInterrupt:
        print("interrupted: training state saved; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LowlightError as e:
        if args.debug:
            raise
        print(error_line(f"python -m training.{'distill' if role == 'student' else 'teacher'}", e), file=sys.stderr)
        return e.exit_code
    finally:
        if info is not None:
            cleanup(info)
