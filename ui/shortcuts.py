"""The viewer's keyboard shortcuts: one table used by the window, the help overlay and the docs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    """One command: ``name`` (the window's action key), its key sequences and a help line."""

    name: str
    keys: tuple[str, ...]
    help: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("pause", ("Space",), "Pause / resume"),
    Shortcut("view_mode", ("V",), "Toggle side by side / split view"),
    Shortcut("fullscreen", ("F", "F11"), "Toggle fullscreen (Esc leaves it)"),
    Shortcut("strength_up", ("Up", "+"), "Strength +0.1"),
    Shortcut("strength_down", ("Down", "-"), "Strength -0.1"),
    Shortcut("seek_back", ("Left",), "Seek back 5 s (files)"),
    Shortcut("seek_forward", ("Right",), "Seek forward 5 s (files)"),
    Shortcut("denoise", ("N",), "Temporal denoising on / off"),
    Shortcut("proc_down", ("[",), "Smaller processing size"),
    Shortcut("proc_up", ("]",), "Larger processing size"),
    Shortcut("next_model", ("M",), "Next model"),
    Shortcut("open_checkpoint", ("Ctrl+M",), "Open a checkpoint..."),
    Shortcut("device", ("D",), "Switch CPU / CUDA (when CUDA exists)"),
    Shortcut("snapshot", ("S",), "Snapshot: save input and enhanced PNGs"),
    Shortcut("record", ("R",), "Start / stop recording the enhanced video"),
    Shortcut("record_sbs", ("Shift+R",), "Start / stop recording side by side"),
    Shortcut("open_file", ("Ctrl+O",), "Open a video file (or drop one on the window)"),
    Shortcut("open_url", ("Ctrl+U",), "Open a stream URL (rtsp://, http://)"),
    Shortcut("overlay", ("I",), "Show / hide the statistics overlay"),
    Shortcut("help", ("F1", "?"), "Show / hide this help"),
    Shortcut("quit", ("Q", "Ctrl+Q"), "Quit"),
)


def shortcut_markdown() -> str:
    """The table as Markdown (docs/VIEWER.md is checked against it in the tests)."""
    rows = ["| Keys | Action |", "|---|---|"]
    for s in SHORTCUTS:
        keys = " / ".join(f"`{k}`" for k in s.keys)
        rows.append(f"| {keys} | {s.help} |")
    return "\n".join(rows)
