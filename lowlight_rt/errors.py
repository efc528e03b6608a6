"""Errors a user can cause, each with a one-line message and a documented exit code.

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``;
``--debug`` adds the traceback. Anything that is not a :class:`LowlightError` is a bug (exit 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1       # a bug: unexpected exception
EXIT_USAGE = 2          # bad command line (argparse)
EXIT_INPUT = 3          # missing / unreadable / corrupt input, camera absent, stream unreachable
EXIT_OUTPUT = 4         # output not writable, output equals input
EXIT_MODEL = 5          # unknown model name, not a checkpoint, broken checkpoint
EXIT_PARTIAL = 6        # an error mid-way: the output was finalised but is PARTIAL
EXIT_DEVICE = 7         # requested device not available (e.g. --device cuda without CUDA)
EXIT_INTERRUPTED = 130  # Ctrl-C: the output was finalised but is PARTIAL
EXIT_TERMINATED = 143   # SIGTERM (kill, timeout, systemd, docker stop): the output was finalised


DOCUMENTED_EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: please report it with --debug output)",
    EXIT_USAGE: "bad command line",
    EXIT_INPUT: "input missing, unreadable or corrupt; camera absent; stream unreachable",
    EXIT_OUTPUT: "output not writable, or output path equals the input",
    EXIT_MODEL: "unknown model name, or a file that is not a lowlight-rt checkpoint",
    EXIT_PARTIAL: "an error stopped processing mid-way: the output was finalised but is PARTIAL",
    EXIT_DEVICE: "requested device not available (e.g. --device cuda without CUDA, or no display for the viewer)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): the output was finalised but is PARTIAL",
    EXIT_TERMINATED: "terminated (SIGTERM: kill, timeout, systemd, docker stop): the output was finalised",
}
"""Every exit code with its one-line meaning: the table ``lowlight-rt --help`` prints (README: the same)."""


class LowlightError(Exception):
    """Base class: a problem with the user's input, not a bug."""

    exit_code = EXIT_INTERNAL


class UsageError(LowlightError):
    """A command line that cannot work, found after parsing: e.g. an output format that cannot
    hold the input (an image into ``.mp4``, a video into ``.png`` or a folder)."""

    exit_code = EXIT_USAGE


class InputError(LowlightError):
    """The input cannot be opened or read (missing, not media, camera absent, stream unreachable)."""

    exit_code = EXIT_INPUT


class OutputError(LowlightError):
    """The output cannot be written (directory missing / read-only, same path as the input)."""

    exit_code = EXIT_OUTPUT


class ModelError(LowlightError):
    """Unknown model name, a file that is not a lowlight-rt checkpoint, or a broken checkpoint."""

    exit_code = EXIT_MODEL


class DeviceError(LowlightError):
    """The requested compute device is not available."""

    exit_code = EXIT_DEVICE


class PartialOutputError(LowlightError):
    """Processing stopped mid-way; the output file was finalised and is playable but partial."""

    exit_code = EXIT_PARTIAL


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler.

    A ``KeyboardInterrupt`` so that it unwinds exactly like Ctrl-C: the pipeline finalises every
    output before it propagates. The CLI then exits with :data:`EXIT_TERMINATED` (143).
    """


def one_line(error: BaseException) -> str:
    """``str(error)`` with newlines and runs of spaces collapsed (stderr gets exactly one line)."""
    return " ".join(str(error).split())


def error_line(prog: str, error: BaseException) -> str:
    """The line a command prints for a user error: ``"PROG: error: MESSAGE"``."""
    return f"{prog}: error: {one_line(error)}"
