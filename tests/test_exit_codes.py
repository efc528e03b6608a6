"""The documented exit codes, pinned as literal numbers (scripts depend on them).

One table is the single source of truth for this test: every row names the number a user's script
sees, words the README and ``--help`` must use for it, and (where cheap) a real ``lowlight-rt`` run
that must end with exactly that number. The numbers are literals on purpose: comparing with
``lowlight_rt.errors.EXIT_*`` would follow a renumbering instead of catching it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from lowlight_rt import errors
from lowlight_app import main  # the lowlight-rt command (viewer included)
from lowlight_rt.cli import EPILOG
from lowlight_rt.inference import Engine
from tests import media

REPO = Path(__file__).resolve().parents[1]

# code -> (name in lowlight_rt.errors, LowlightError subclass or None, words the README and the
#          --help epilog must both use for it)
EXIT_CODES: dict[int, tuple[str, type | None, tuple[str, ...]]] = {
    0: ("EXIT_OK", None, ("success",)),
    1: ("EXIT_INTERNAL", None, ("internal error",)),
    2: ("EXIT_USAGE", errors.UsageError, ("bad command line",)),
    3: ("EXIT_INPUT", errors.InputError, ("input missing", "unreadable", "corrupt", "camera absent",
                                          "stream unreachable")),
    4: ("EXIT_OUTPUT", errors.OutputError, ("output", "not writable", "input")),
    5: ("EXIT_MODEL", errors.ModelError, ("unknown model", "not a lowlight-rt checkpoint")),
    6: ("EXIT_PARTIAL", errors.PartialOutputError, ("mid-way", "finalised", "partial")),
    7: ("EXIT_DEVICE", errors.DeviceError, ("device not available",)),
    130: ("EXIT_INTERRUPTED", None, ("interrupted", "ctrl-c", "finalised", "partial")),
    143: ("EXIT_TERMINATED", None, ("terminated", "sigterm", "finalised")),
}


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(";", ",").split())


# -- the code and the two documents agree with the table ----------------------------------------
def test_errors_module_uses_the_documented_numbers():
    for code, (name, cls, _) in EXIT_CODES.items():
        assert getattr(errors, name) == code, name
        if cls is not None:
            assert cls.exit_code == code, cls.__name__
    assert errors.LowlightError.exit_code == 1
    documented = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert documented == set(EXIT_CODES), "a new exit code needs a row here, in the README and in --help"


def readme_exit_codes() -> dict[int, str]:
    """``{code: meaning}`` from the README's **Exit codes.** paragraph (``0 success; 1 ...; 130 ...``)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"\*\*Exit codes\.\*\*(.*?)(?:\n\s*\n|Every error is one line)", text, re.S)
    assert m, "README.md has no **Exit codes.** paragraph"
    body = " ".join(m.group(1).split())
    # entries are "N meaning" separated by "; " (a meaning may hold commas and parentheses)
    entries = re.split(r";\s+(?=\d+\s)", body.strip().rstrip("."))
    out: dict[int, str] = {}
    for entry in entries:
        em = re.fullmatch(r"(\d+)\s+(.+)", entry.strip())
        assert em, f"README exit-code entry not 'N meaning': {entry!r}"
        assert int(em.group(1)) not in out, f"README lists exit code {em.group(1)} twice"
        out[int(em.group(1))] = em.group(2)
    return out


def epilog_exit_codes() -> dict[int, str]:
    """``{code: meaning}`` from the ``exit codes:`` block of ``lowlight-rt --help``."""
    block = EPILOG.split("exit codes:", 1)[1].split("\n\n", 1)[0]
    out: dict[int, str] = {}
    for line in block.strip("\n").splitlines():
        m = re.fullmatch(r"\s+(\d+)\s+(.+)", line)
        assert m, f"epilog exit-code line not '  N  meaning': {line!r}"
        out[int(m.group(1))] = m.group(2)
    return out


@pytest.mark.parametrize("where", ["README", "--help epilog"])
def test_documents_list_the_same_codes_and_meanings(where, capsys):
    documented = readme_exit_codes() if where == "README" else epilog_exit_codes()
    assert sorted(documented) == sorted(EXIT_CODES)
    for code, (_, _, words) in EXIT_CODES.items():
        meaning = _norm(documented[code])
        for word in words:
            assert word in meaning, f"{where}: exit code {code} should mention {word!r}: {documented[code]!r}"
    if where == "README":
        # the one exception the README states: Ctrl-C ends a live recording normally
        assert re.search(r"live recording ctrl-c is the normal way to stop, exit 0", _norm(documented[130]))
    else:
        assert main(["--help"]) == 0
        assert EPILOG.split("examples:")[0] in capsys.readouterr().out  # --help really shows it


# -- each code through the real command ------------------------------------------------------------
@pytest.fixture
def not_a_directory(tmp_path) -> Path:
    f = tmp_path / "plain_file"
    f.write_text("a regular file, used below as if it were a folder\n")
    return f


def _case_internal(ctx):
    def broken(self, frames, **kw):
        raise RuntimeError("simulated bug")

    ctx.monkeypatch.setattr(Engine, "submit", broken)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4"]


def _case_partial(ctx):
    original = Engine.submit
    done = {"n": 0}

    def failing(self, frames, **kw):
        if done["n"] + len(frames) > 4:
            raise RuntimeError("simulated failure mid-way")
        done["n"] += len(frames)
        return original(self, frames, **kw)

    ctx.monkeypatch.setattr(Engine, "submit", failing)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--batch", "1"]


def _case_ctrl_c_on_a_file(ctx):
    """Ctrl-C arrives in the main thread (raised by the progress callback) while the file is half done."""
    from lowlight_rt import jobs

    original_submit, original_update = Engine.submit, jobs._Progress.update_stats

    def slow(self, frames, **kw):
        time.sleep(0.04 * len(frames))
        return original_submit(self, frames, **kw)

    def interrupting(self, stats):
        original_update(self, stats)
        if stats.frames_out >= 2:
            raise KeyboardInterrupt

    ctx.monkeypatch.setattr(Engine, "submit", slow)
    ctx.monkeypatch.setattr(jobs._Progress, "update_stats", interrupting)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4"]  # no -q: the progress callback runs


def _case_sigterm_on_a_file(ctx):
    """SIGTERM (sent to this very process from the progress callback) while the file is half done."""
    from lowlight_rt import jobs

    original_submit, original_update = Engine.submit, jobs._Progress.update_stats

    def slow(self, frames, **kw):
        time.sleep(0.04 * len(frames))
        return original_submit(self, frames, **kw)

    def terminating(self, stats):
        original_update(self, stats)
        if stats.frames_out >= 2:
            # without the CLI's handler SIGTERM would kill the test run itself
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None), "no SIGTERM handler"
            os.kill(os.getpid(), signal.SIGTERM)

    ctx.monkeypatch.setattr(Engine, "submit", slow)
    ctx.monkeypatch.setattr(jobs._Progress, "update_stats", terminating)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4"]  # no -q: the progress callback runs


def _case_no_cuda(ctx):
    ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--device", "cuda"]


def _case_no_display(ctx):
    import ui.app

    def viewer_must_not_start(*args, **kwargs):  # Qt would abort this process
        raise AssertionError("the viewer was started without a display")

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        ctx.monkeypatch.delenv(name, raising=False)
    ctx.monkeypatch.setattr(sys, "platform", "linux")
    ctx.monkeypatch.setattr(ui.app, "run_viewer", viewer_must_not_start)
    return ["--input", ctx.clip, "--view"]


def _case_not_a_checkpoint(ctx):
    fake = ctx.tmp / "weights.pt"
    fake.write_bytes(b"PK\x03\x04 this is not a checkpoint, only a zip header")
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--model", fake]


def _case_malicious_checkpoint(ctx):
    """A checkpoint whose unpickling would run a command (it would create ``ctx.marker``)."""
    ctx.marker = ctx.tmp / "pwned"
    path = ctx.tmp / "evil.pt"
    torch.save(malicious_checkpoint_payload(ctx.marker), path)
    return ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--model", path]


class _RunsCode:
    """Unpickling this object runs ``touch MARKER`` (what a weights_only=False load would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def malicious_checkpoint_payload(marker: Path) -> dict:
    """Looks like a lowlight-rt checkpoint; its metadata is a pickled ``os.system`` call."""
    return {"format": "lowlight-rt-checkpoint", "format_version": 1, "arch": "classical", "config": {},
            "state_dict": {}, "metadata": _RunsCode(marker)}


_ON_LINUX_PROC = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")

# (case id, expected exit code as a LITERAL, argv builder)
CASES = [
    pytest.param(0, lambda ctx: ["--list-models"], id="list-models"),
    pytest.param(0, lambda ctx: ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4"], id="file round trip"),
    pytest.param(1, _case_internal, id="unexpected exception"),
    pytest.param(2, lambda ctx: ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--crf", "99"],
                 id="bad option value"),
    pytest.param(2, lambda ctx: ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--no-such-flag"],
                 id="unknown option"),
    pytest.param(2, lambda ctx: ["--input", ctx.clip, "--camera", "0", "--out", ctx.tmp / "o.mp4"],
                 id="two inputs"),
    pytest.param(2, lambda ctx: ["--input", ctx.clip, "--out", ctx.tmp / "o.png"],
                 id="output format that cannot hold the input"),
    pytest.param(3, lambda ctx: ["--input", ctx.tmp / "missing.mp4", "--out", ctx.tmp / "o.mp4"],
                 id="missing input"),
    pytest.param(3, lambda ctx: ["--input", media.random_bytes_file(ctx.tmp / "r.mp4"), "--out", ctx.tmp / "o.mp4"],
                 id="input is not media"),
    # unwritable even for root (CI runs as root, where a chmod'ed folder is still writable)
    pytest.param(4, lambda ctx: ["--input", ctx.clip, "--out", ctx.not_a_directory / "o.mp4"],
                 id="output under a regular file"),
    pytest.param(4, lambda ctx: ["--input", ctx.clip, "--out", "/proc/lowlight-rt-test-output.mp4"],
                 id="output under /proc", marks=_ON_LINUX_PROC),
    pytest.param(4, lambda ctx: ["--input", ctx.clip, "--out", ctx.clip], id="output equals input"),
    pytest.param(5, lambda ctx: ["--input", ctx.clip, "--out", ctx.tmp / "o.mp4", "--model", "no-such-model"],
                 id="unknown model"),
    pytest.param(5, _case_not_a_checkpoint, id="not a checkpoint"),
    pytest.param(5, _case_malicious_checkpoint, id="checkpoint that would run code"),
    pytest.param(6, _case_partial, id="error mid-way"),
    pytest.param(7, _case_no_cuda, id="--device cuda without CUDA"),
    pytest.param(7, _case_no_display, id="viewer without a display"),
    pytest.param(130, _case_ctrl_c_on_a_file, id="Ctrl-C on a file"),
    pytest.param(143, _case_sigterm_on_a_file, id="SIGTERM on a file"),
]


class _Ctx:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("expected,build", CASES)
def test_exit_code_through_the_cli(expected, build, clip, tmp_path, not_a_directory, monkeypatch, capsys):
    ctx = _Ctx(clip=media.copy(clip, tmp_path / "in.mp4"), tmp=tmp_path, not_a_directory=not_a_directory,
               monkeypatch=monkeypatch, marker=None)
    argv = [os.fspath(a) for a in build(ctx)]
    if expected not in (130, 143):  # the signal cases need the progress bar; elsewhere stderr holds only errors
        argv.insert(0, "-q")
    code = main(argv)
    err = capsys.readouterr().err
    assert code == expected, f"exit {code}, expected {expected}\n{err}"
    assert "Traceback" not in err
    if expected in (3, 4, 5, 6, 7):  # user errors: one "lowlight-rt: error:" line
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("lowlight-rt: error:"), err
    if ctx.marker is not None:
        assert not ctx.marker.exists(), "loading the checkpoint ran the code pickled in it"
    if expected in (2, 3, 4, 5, 7):  # refused before anything was written
        assert not (tmp_path / "o.mp4").exists()


def test_every_documented_code_is_driven_through_the_cli():
    assert {p.values[0] for p in CASES} == set(EXIT_CODES)


@_ON_LINUX_PROC
def test_an_output_that_cannot_be_opened_is_refused_before_any_frame(clip, tmp_path, capsys):
    """Not even the progress bar: the output is opened for writing before the run starts (as root,
    permission bits say nothing, so only a real open tells)."""
    code = main(["--input", os.fspath(media.copy(clip, tmp_path / "in.mp4")), "--out", "/proc/lowlight-rt-x.mp4"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 4 and len(lines) == 1 and lines[0].startswith("lowlight-rt: error: cannot write"), lines
