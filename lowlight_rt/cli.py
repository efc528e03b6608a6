"""The ``lowlight-rt`` command: enhance a file, an image folder, a camera or a network stream.

The command line becomes one :class:`~lowlight_rt.config.RunConfig`; a headless run goes through
:mod:`lowlight_rt.run` (and :mod:`lowlight_rt.jobs` for the progress bar and summary). The viewer
is not part of this package: :func:`main` is given a :class:`ViewerHooks` by the launcher above it
(``lowlight_app``, the ``lowlight-rt`` console script), so a headless run never imports PyQt6.

Every user error ends in ONE line on stderr and a documented non-zero exit code
(see :mod:`lowlight_rt.errors`); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import __version__
from .codecs import X264_PRESET_PARAMS
from .config import (CPU_RUNTIMES, DEFAULT_CPU_RUNTIME, DEFAULT_DENOISE, MIN_PROC_SIZE, STREAM_RETRIES,
                     STREAM_TIMEOUT_S, X264_CRF, X264_PRESET, X264_PRESETS, RunConfig)
from .errors import (DOCUMENTED_EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE,
                     InputError, LowlightError, OutputError, Terminated, error_line, one_line)

EPILOG = "exit codes:\n" + "".join(f"  {code:<4d} {text}\n" for code, text in DOCUMENTED_EXIT_CODES.items()) + """
examples:
  lowlight-rt --demo --out demo_clean.mp4        enhance the bundled demo clip
  lowlight-rt --input night.mp4 --out clean.mp4  enhance a video file (audio kept)
  lowlight-rt --input photos/ --out bright/      enhance the images in a folder (subfolders are not
                                                 entered; grey stays grey, alpha is kept)
  lowlight-rt --camera 0                         live viewer on the first camera
  lowlight-rt --camera 0 --no-gui --out rec.mp4  record enhanced camera video headless
  lowlight-rt --input rtsp://host/stream --view  live viewer on a network stream
  lowlight-rt --input http://host/clip.mp4 --out clean.mp4   a URL serving a file is read like a file
  lowlight-rt bench --json                       speed benchmark
"""

def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _int_in(lo: int, hi: int | None, what: str) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]`` (``hi=None``: no upper limit), one-line message otherwise."""
    valid = f"{lo}..{hi}" if hi is not None else f">= {lo}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {valid}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {valid}, got {value}")
        return value

    return parse


def _proc_size(text: str) -> int:
    """``--proc-size``: a short side >= 64 pixels, or ``full`` (the network sees the full frame; 0)."""
    if text.strip().lower() == "full":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < MIN_PROC_SIZE or value > 8192:
        raise argparse.ArgumentTypeError(
            f"processing size must be {MIN_PROC_SIZE}..8192 pixels (short side) or 'full', got {text!r}")
    return value


def _strength(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("strength must be in [0, 1]")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="lowlight-rt",
        description="Real-time low-light video enhancement. Default model: the distilled student "
                    "assets/models/realtime.pt ('realtime'; see --list-models). 'classical' (adaptive gamma + "
                    "CLAHE-style local contrast, no learning) is the fallback where that file is absent.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("input (one of)")
    src.add_argument("--input", "-i", metavar="PATH|URL",
                     help="video file, image, image folder, or rtsp:// / http(s):// stream")
    src.add_argument("--camera", metavar="N", help="camera index (v4l2 /dev/videoN, avfoundation, dshow)")
    src.add_argument("--demo", action="store_true", help="use the bundled demo clip (assets/demo)")
    src.add_argument("--loop", action="store_true",
                     help="start a video file or a finite http(s) URL over at its end (until Ctrl-C or "
                          "--max-frames); without it, a URL serving a file is read once like a file")
    cam = p.add_argument_group("camera options")
    cam.add_argument("--camera-size", type=_size, metavar="WxH", help="capture size, e.g. 1280x720")
    cam.add_argument("--camera-fps", type=_positive, metavar="FPS", help="capture frame rate")
    cam.add_argument("--pixel-format", metavar="FMT", help="capture pixel format, e.g. mjpeg, yuyv422")
    net = p.add_argument_group("stream options")
    net.add_argument("--timeout", type=_positive, default=STREAM_TIMEOUT_S, metavar="SECONDS",
                     help=f"stream: connect / read timeout before giving up or reconnecting (default {STREAM_TIMEOUT_S:g})")
    net.add_argument("--retries", type=_int_in(0, 1000, "--retries"), default=STREAM_RETRIES, metavar="N",
                     help=f"stream: reconnect attempts after the stream drops (default {STREAM_RETRIES}, 0 = none)")
    out = p.add_argument_group("output")
    out.add_argument("--out", "-o", metavar="PATH", help="output .mp4 (video, stream, camera) or folder/image")
    out.add_argument("--side-by-side", action="store_true", help="write input | enhanced side by side")
    out.add_argument("--crf", type=_int_in(0, 51, "--crf"), default=X264_CRF,
                     help=f"x264 quality 0..51, lower is better (default {X264_CRF})")
    out.add_argument("--preset", choices=X264_PRESETS, default=X264_PRESET, metavar="PRESET",
                     help=f"x264 preset: {', '.join(X264_PRESETS)} (default {X264_PRESET}; "
                          f"{', '.join(f'{k} with {v}' for k, v in X264_PRESET_PARAMS.items())})")
    out.add_argument("--view", action="store_true", help="open the viewer for a file or stream")
    out.add_argument("--no-gui", action="store_true", help="camera/stream: record headless (needs --out)")
    out.add_argument("--max-frames", type=_int_in(1, None, "--max-frames"), metavar="N",
                     help="stop after N frames (live sources)")
    mdl = p.add_argument_group("model and engine")
    mdl.add_argument("--model", "-m", metavar="PATH|NAME", help="checkpoint path or model name")
    mdl.add_argument("--list-models", action="store_true", help="list available models and exit")
    mdl.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    mdl.add_argument("--fp32", action="store_true", help="CUDA: run in float32 instead of float16")
    mdl.add_argument("--proc-size", type=_proc_size, metavar="PX",
                     help=f"short side the network runs at, {MIN_PROC_SIZE}..8192 or 'full' (default: the "
                          "model's); output stays full size")
    mdl.add_argument("--strength", type=_strength, default=1.0, help="blend in [0, 1] (default 1)")
    mdl.add_argument("--batch", type=_int_in(1, 256, "--batch"), default=None,
                     help="frames per inference batch, 1..256 (files)")
    mdl.add_argument("--threads", type=_int_in(1, 256, "--threads"), default=None,
                     help="CPU threads for inference, 1..256")
    mdl.add_argument("--compile", action="store_true",
                     help="torch.compile the model (CUDA; slow first batch, falls back to eager if it fails)")
    mdl.add_argument("--cpu-runtime", choices=CPU_RUNTIMES, default=DEFAULT_CPU_RUNTIME,
                     help="what runs the network on the CPU (default %(default)s: the checkpoint's ONNX export "
                          "of the student's operator grid when it has one, as the shipped student does; ~1.3x faster than torch)")
    mdl.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=DEFAULT_DENOISE,
                     help="temporal denoising of the enhanced video: static noisy areas averaged over frames, off "
                          "by itself on clean video (default: %(default)s)")
    ui = p.add_argument_group("viewer (for scripts and tests)")
    ui.add_argument("--quit-after", type=_int_in(1, None, "--quit-after"), metavar="N", help="quit the viewer after N frames shown")
    ui.add_argument("--screenshot", metavar="PNG", help="save the viewer window when it quits")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"lowlight-rt {__version__}")
    return p


@dataclass(frozen=True)
class ViewerHooks:
    """The viewer, handed to :func:`main` by the launcher (the runtime never imports it).

    Attributes:
        run: ``run(config, quit_after=N|None, screenshot=PNG|None) -> exit code``: open the viewer
            on ``config`` (every run setting, including ``out``: record to it).
        bench: ``bench(seconds=, width=, height=, fps=, model=, proc_size=) -> dict``: the viewer's
            display FPS / latency benchmark (``lowlight-rt bench --viewer``).
    """

    run: Callable[..., int]
    bench: Callable[..., dict[str, Any]] | None = None


#: what a viewer request says when no viewer was handed in (``python -m lowlight_rt``)
NO_VIEWER = ("the viewer is not part of the runtime package: start it with the lowlight-rt command "
             "(python -m lowlight_app), or record headless with --no-gui --out rec.mp4")


def main(argv: Sequence[str] | None = None, *, viewer: ViewerHooks | None = None) -> int:
    """The command line (``python -m lowlight_rt``; the ``lowlight-rt`` script passes ``viewer``).

    Returns the exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    previous_sigterm = _install_sigterm_handler()
    previous_showwarning = warnings.showwarning
    if not debug:   # a runtime warning (e.g. a fallback) is one line, like an error; --debug shows where
        warnings.showwarning = _warning_line
    try:
        if argv and argv[0] == "bench":
            from .bench import main as bench_main
            return bench_main(argv[1:], viewer_bench=viewer.bench if viewer is not None else None)
        args = build_parser().parse_args(argv)
        return _run(args, viewer)
    except SystemExit as e:  # argparse: --help, --version, usage errors
        return int(e.code) if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_USAGE)
    except Terminated:  # SIGTERM before any output was started (or after it was finalised)
        print("lowlight-rt: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("lowlight-rt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LowlightError as e:
        if debug:
            traceback.print_exc()
        print(error_line("lowlight-rt", e), file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"lowlight-rt: internal error: {type(e).__name__}: {one_line(e)} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = previous_showwarning
        _restore_sigterm_handler(previous_sigterm)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` of the command: ``lowlight-rt: warning: MESSAGE``, one line on stderr,
    above a progress bar if one is shown (tqdm's write keeps the bar intact)."""
    from tqdm import tqdm

    tqdm.write(f"lowlight-rt: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


_NOT_INSTALLED = object()


def _install_sigterm_handler():
    """Make SIGTERM raise :class:`~lowlight_rt.errors.Terminated` in the main thread (once).

    Without a handler SIGTERM kills the process on the spot: no summary, and an MP4 without its
    index (unplayable). Raised like Ctrl-C's ``KeyboardInterrupt``, it lets the pipeline finalise the
    output first. Only the first SIGTERM raises: a second one (``kill`` repeated, ``docker stop``'s
    grace period) must not break the finalisation it would interrupt. Returns the previous
    handler, or a marker when none was installed (not the main thread, e.g. called from a test).
    """
    if threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED
    fired = False

    def on_sigterm(signum, frame):
        nonlocal fired
        if fired:
            return
        fired = True
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):  # no signals here (embedded interpreter)
        return _NOT_INSTALLED


def _restore_sigterm_handler(previous) -> None:
    if previous is _NOT_INSTALLED:
        return
    try:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of a parsed command line (``--input``/``--camera``/``--demo`` resolved)."""
    spec: str | int | None = args.input if args.input is not None else (
        _camera_spec(args.camera) if args.camera is not None else None)
    return RunConfig(
        source=spec, out=args.out, loop=args.loop, model=args.model, device=args.device, fp16=not args.fp32,
        proc_size=args.proc_size, strength=args.strength, threads=args.threads, batch=args.batch,
        compile=args.compile, cpu_runtime=args.cpu_runtime, denoise=args.denoise, side_by_side=args.side_by_side,
        crf=args.crf, preset=args.preset,
        max_frames=args.max_frames, camera_size=args.camera_size, camera_fps=args.camera_fps,
        pixel_format=args.pixel_format, timeout=args.timeout, retries=args.retries, quiet=args.quiet)


def _run(args: argparse.Namespace, viewer: ViewerHooks | None = None) -> int:
    if args.list_models:
        for name, description in _model_descriptions().items():
            print(f"{name:20s} {description}")
        return EXIT_OK

    chosen = [x for x in (args.input is not None, args.camera is not None, args.demo) if x]
    if len(chosen) != 1:
        build_parser().error("give exactly one of --input, --camera, --demo")
    if args.demo:
        from .demo import demo_clip_path
        path = demo_clip_path()
        if not path.exists():
            raise InputError(f"demo clip missing: {path} (regenerate with: python -m lowlight_rt.demo --regenerate)")
        args.input = str(path)

    config = config_from_args(args)
    is_live = not isinstance(config.source, str) or "://" in config.source
    wants_viewer = args.view or (args.camera is not None and not args.no_gui)
    if wants_viewer:
        if viewer is None:
            raise OutputError(NO_VIEWER)
        return viewer.run(config, quit_after=args.quit_after, screenshot=args.screenshot)
    if args.out is None:
        if is_live:
            build_parser().error("headless capture needs --out rec.mp4 (or drop --no-gui to open the viewer)")
        build_parser().error("no --out given (or use --view to watch instead)")
    return _run_headless(config)


def _model_descriptions() -> dict[str, str]:
    """``{name: one-line description}`` of every model ``--model NAME`` accepts, default first."""
    from .models.catalog import default_model_name, list_available_models, shipped_models
    from .models.registry import get_model_class

    shipped, default = shipped_models(), default_model_name()
    out: dict[str, str] = {}
    for name in list_available_models():
        if name in shipped:
            text = f"trained checkpoint {shipped[name]}"
        else:
            doc = (get_model_class(name).__doc__ or "").strip().splitlines()
            text = (doc[0] if doc else name) + " [weight-free]"
        out[name] = text + (" (default)" if name == default else "")
    return out


def _camera_spec(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _build_engine(config: RunConfig):
    from .run import load_engine

    return load_engine(config)


def _run_headless(config: RunConfig) -> int:
    from .jobs import run_job
    from .run import check_output

    check_output(config)  # before the model loads
    engine, model_name = _build_engine(config)
    return run_job(config, engine, model_name=model_name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
