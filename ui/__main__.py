"""``python -m ui [SOURCE]``: open the viewer (the same window ``lowlight-rt --camera 0`` opens)."""

from __future__ import annotations

import argparse
import sys

import dataclasses

from lowlight_rt.config import RunConfig

from .app import run_viewer


def _default(name: str):
    """``RunConfig``'s default for ``name`` (the one owner of every run setting's default)."""
    return next(f.default for f in dataclasses.fields(RunConfig) if f.name == name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui", description="lowlight-rt live viewer "
                                "(every run option: lowlight-rt --view / --camera N)")
    p.add_argument("source", nargs="?", help="video file, image folder, URL, or camera index")
    p.add_argument("--model", "-m", help="checkpoint path or model name")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=_default("device"))
    p.add_argument("--fp32", action="store_true", help="CUDA: float32 instead of float16")
    p.add_argument("--proc-size", type=int, help="short side the network runs at")
    p.add_argument("--strength", type=float, default=_default("strength"))
    p.add_argument("--split", action="store_true", help="start in split view")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--output-dir", default=".", help="where snapshots and recordings go")
    p.add_argument("--quit-after", type=int, metavar="N", help="quit after N frames shown")
    p.add_argument("--screenshot", metavar="PNG", help="save the window when quitting")
    args = p.parse_args(argv)
    spec = args.source
    if spec is not None and spec.isdigit():
        spec = int(spec)
    config = RunConfig(source=spec, loop=True, model=args.model, device=args.device, fp16=not args.fp32,
                       proc_size=args.proc_size, strength=args.strength)
    return run_viewer(config, mode="split" if args.split else "side", fullscreen=args.fullscreen,
                      output_dir=args.output_dir, quit_after=args.quit_after, screenshot=args.screenshot)


if __name__ == "__main__":
    sys.exit(main())
