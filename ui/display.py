"""Can Qt open a window here? Checked before the viewer's QApplication exists (Qt would abort).

Qt does not report a missing display or missing platform-plugin libraries: it aborts the process
(exit 134) with a multi-line message. :func:`check_display` finds those cases first and raises
``DeviceError`` (one line, exit 7).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lowlight_rt.errors import DeviceError

#: Qt platforms that need no display server
_HEADLESS_QT_PLATFORMS = frozenset({"offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"})
#: the Debian / Ubuntu packages Qt's xcb platform plugin needs beyond a plain X11 client
XCB_PACKAGES = "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
_HEADLESS_HINT = "record headless with --no-gui --out rec.mp4, or run the viewer under xvfb-run"


def check_display() -> None:
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


