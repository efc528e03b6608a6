"""The ``lowlight-rt`` command: enhance a file, an image folder, a camera or a network stream.

Every user error ends in ONE line on stderr and a documented non-zero exit code
(see :mod:`lowlight_rt.errors`); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .codecs import X264_CRF, X264_PRESET
from .errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, DeviceError,
                     InputError, LowlightError, OutputError, Terminated)

EPILOG = """\
exit codes:
  0    success
  1    internal error (a bug: please report it with --debug output)
  2    bad command line
  3    input missing, unreadable or corrupt; camera absent; stream unreachable
  4    output not writable, or output path equals the input
  5    unknown model name, or a file that is not a lowlight-rt checkpoint
  6    an error stopped processing mid-way: the output was finalised but is PARTIAL
  7    requested device not available (e.g. --device cuda without CUDA, or no display for the viewer)
  130  interrupted (Ctrl-C): the output was finalised but is PARTIAL
  143  terminated (SIGTERM: kill, timeout, systemd, docker stop): the output was finalised

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


#: x264's presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
#: smallest processing short side that still leaves the network something to see
MIN_PROC_SIZE = 64


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
        description="Real-time low-light video enhancement. Default model: see --list-models "
                    "('classical' = adaptive gamma + CLAHE-style local contrast, no learning, used "
                    "until a trained student ships in assets/models/).",
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
    net.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS",
                     help="stream: connect / read timeout before giving up or reconnecting (default 10)")
    net.add_argument("--retries", type=_int_in(0, 1000, "--retries"), default=5, metavar="N",
                     help="stream: reconnect attempts after the stream drops (default 5, 0 = none)")
    out = p.add_argument_group("output")
    out.add_argument("--out", "-o", metavar="PATH", help="output .mp4 (video, stream, camera) or folder/image")
    out.add_argument("--side-by-side", action="store_true", help="write input | enhanced side by side")
    out.add_argument("--crf", type=_int_in(0, 51, "--crf"), default=X264_CRF,
                     help=f"x264 quality 0..51, lower is better (default {X264_CRF})")
    out.add_argument("--preset", choices=X264_PRESETS, default=X264_PRESET, metavar="PRESET",
                     help=f"x264 preset: {', '.join(X264_PRESETS)} (default {X264_PRESET})")
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
    ui = p.add_argument_group("viewer (for scripts and tests)")
    ui.add_argument("--quit-after", type=_int_in(1, None, "--quit-after"), metavar="N", help="quit the viewer after N frames shown")
    ui.add_argument("--screenshot", metavar="PNG", help="save the viewer window when it quits")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"lowlight-rt {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lowlight-rt`` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    previous_sigterm = _install_sigterm_handler()
    try:
        if argv and argv[0] == "bench":
            from .bench import main as bench_main
            return bench_main(argv[1:])
        args = build_parser().parse_args(argv)
        return _run(args)
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
        print(f"lowlight-rt: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"lowlight-rt: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        _restore_sigterm_handler(previous_sigterm)


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


def _one_line(error: BaseException) -> str:
    """``str(error)`` with newlines and runs of spaces collapsed (stderr gets exactly one line)."""
    return " ".join(str(error).split())


def _run(args: argparse.Namespace) -> int:
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

    spec: str | int = args.input if args.input is not None else _camera_spec(args.camera)
    is_live = not isinstance(spec, str) or _is_url(spec)
    wants_viewer = args.view or (args.camera is not None and not args.no_gui)
    if wants_viewer:
        return _run_viewer(args, spec)
    if args.out is None:
        if is_live:
            build_parser().error("headless capture needs --out rec.mp4 (or drop --no-gui to open the viewer)")
        build_parser().error("no --out given (or use --view to watch instead)")
    return _run_headless(args, spec, is_live)


def _model_descriptions() -> dict[str, str]:
    """``{name: one-line description}`` of every model ``--model NAME`` accepts, default first."""
    from .models.hub import default_model_name, list_available_models, shipped_models
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


def _is_url(spec: str) -> bool:
    return "://" in spec


def _check_output(spec: str | int, out: str) -> Path:
    """Refuse an output that would overwrite the input; returns the output path."""
    out_path = Path(out)
    if isinstance(spec, str) and not _is_url(spec):
        src = Path(spec)
        same = src.resolve() == out_path.resolve()
        if not same and src.exists() and out_path.exists():
            try:
                same = os.path.samefile(src, out_path)  # hard links
            except OSError:
                same = False
        if same:
            what = "folder" if src.is_dir() else "file"
            raise OutputError(f"output {out} is the input {what}; refusing to overwrite it")
    return out_path


def _build_engine(args: argparse.Namespace):
    from .engine import Engine
    from .models.hub import load_model

    model, info = load_model(args.model)
    engine = Engine(model, device=args.device, fp16=not args.fp32, proc_size=args.proc_size,
                    strength=args.strength, threads=args.threads)
    return engine, info


def _run_headless(args: argparse.Namespace, spec: str | int, is_live: bool) -> int:
    from .jobs import JobOptions, check_output_kind, run_job
    from .sources import source_kind

    _check_output(spec, args.out)
    kind = source_kind(spec)
    check_output_kind(spec, args.out, kind=kind, image_count=_image_count(spec) if kind == "images" else None)
    engine, info = _build_engine(args)
    options = JobOptions(side_by_side=args.side_by_side, crf=args.crf, preset=args.preset,
                         batch_size=args.batch, max_frames=args.max_frames, quiet=args.quiet, loop=args.loop,
                         camera_options=_camera_options(args), stream_options=_stream_options(args))
    return run_job(spec, args.out, engine, options, model_name=info.get("name", args.model or ""))


def _image_count(spec: str | int) -> int | None:
    """How many image files an image input holds (1 for a file), ``None`` if it cannot be listed."""
    from .sources import is_image_path

    path = Path(str(spec))
    if not path.is_dir():
        return 1
    try:
        return sum(1 for p in path.iterdir() if p.is_file() and is_image_path(p))
    except OSError:
        return None


def _camera_options(args: argparse.Namespace) -> dict | None:
    opts: dict = {}
    if args.camera_size:
        opts["width"], opts["height"] = args.camera_size
    if args.camera_fps:
        opts["fps"] = args.camera_fps
    if args.pixel_format:
        opts["pixel_format"] = args.pixel_format
    return opts or None


def _stream_options(args: argparse.Namespace) -> dict:
    """``--timeout`` / ``--retries`` as :class:`~lowlight_rt.sources.stream.StreamSource` keywords."""
    return {"open_timeout": args.timeout, "read_timeout": args.timeout, "max_retries": max(0, args.retries)}


#: Qt platforms that need no display server
_HEADLESS_QT_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"})
#: the Debian / Ubuntu packages Qt's xcb platform plugin needs beyond a plain X11 client
XCB_PACKAGES = "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
_HEADLESS_HINT = "record headless with --no-gui --out rec.mp4, or run the viewer under xvfb-run"


def _check_display() -> None:
    """Raise ``DeviceError`` (one line, exit 7) when Qt could not open the viewer's window.

    Qt does not report that: it aborts the process (exit 134) with a multi-line message when its
    platform plugin cannot load (xcb libraries missing) or cannot reach the display. So before the
    application is created: which platform Qt will use (``QT_QPA_PLATFORM``, else xcb, or
    Wayland in a Wayland session); for xcb, that ``DISPLAY`` is set, that the plugin library loads
    (its system libraries are installed) and that the X server answers.
    """
    if not sys.platform.startswith("linux"):
        return
    requested = os.environ.get("QT_QPA_PLATFORM", "").strip().lower()
    platform = requested.split(";")[0].split(":")[0].strip()
    if platform in _HEADLESS_QT_PLATFORMS:
        return
    display, wayland = os.environ.get("DISPLAY", ""), os.environ.get("WAYLAND_DISPLAY", "")
    if not platform:
        if wayland and os.environ.get("XDG_SESSION_TYPE", "").lower() == "wayland":
            return  # Qt picks its Wayland plugin (and falls back to xcb itself)
        if not display and not wayland:
            raise DeviceError(f"no display for the viewer (DISPLAY is not set): {_HEADLESS_HINT}, "
                              f"or set QT_QPA_PLATFORM=offscreen")
        platform = "xcb" if display else "wayland"
    if platform == "wayland":
        if not wayland:
            raise DeviceError(f"no display for the viewer (QT_QPA_PLATFORM=wayland but WAYLAND_DISPLAY is "
                              f"not set): {_HEADLESS_HINT}")
        return
    if platform != "xcb":
        return  # another platform plugin: Qt's own checks
    if not display:
        raise DeviceError(f"no display for the viewer (DISPLAY is not set): {_HEADLESS_HINT}")
    problem = _xcb_plugin_problem()
    if problem:
        raise DeviceError(f"the viewer cannot start: Qt's xcb platform plugin does not load ({problem}); "
                          f"install its system libraries (Debian/Ubuntu: apt-get install {XCB_PACKAGES}), "
                          f"or {_HEADLESS_HINT}")
    if not _x_server_answers(display):
        raise DeviceError(f"no display for the viewer: cannot connect to the X server at DISPLAY={display}; "
                          f"{_HEADLESS_HINT}")


def _load_library(path: str):
    import ctypes

    return ctypes.CDLL(path)


def _xcb_plugin_problem() -> str | None:
    """Why Qt's xcb plugin library would not load (e.g. ``libxcb-icccm.so.4 not found``), or None."""
    try:
        from PyQt6.QtCore import QLibraryInfo

        plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    except Exception:  # noqa: BLE001 - no PyQt6: the import of the viewer reports it
        return None
    plugin = plugins / "platforms" / "libqxcb.so"
    if not plugin.exists():
        return f"{plugin} is missing"
    try:
        _load_library(str(plugin))
    except OSError as exc:
        reason = " ".join(str(exc).split())
        missing = reason.split(":", 1)[0].strip()
        return f"{missing} not found" if "No such file" in reason and missing.startswith("lib") else reason
    return None


def _x_server_answers(display: str) -> bool:
    """True if an X11 connection to ``display`` opens (through libxcb, as Qt would)."""
    import ctypes

    try:
        xcb = _load_library("libxcb.so.1")
    except OSError:
        return True  # cannot tell; the plugin check above loaded libxcb already
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return connection is not None and xcb.xcb_connection_has_error(connection) == 0
    finally:
        if connection is not None:
            xcb.xcb_disconnect(connection)


def _run_viewer(args: argparse.Namespace, spec: str | int) -> int:
    _check_display()
    try:
        from ui.app import run_viewer
    except ImportError as e:
        raise OutputError(f"the viewer cannot start: {e}") from e

    return run_viewer(source_spec=spec, model=args.model, device=args.device, fp16=not args.fp32,
                      proc_size=args.proc_size, strength=args.strength, record=args.out,
                      side_by_side=args.side_by_side, quit_after=args.quit_after,
                      screenshot=args.screenshot, camera_size=args.camera_size,
                      camera_fps=args.camera_fps, pixel_format=args.pixel_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
