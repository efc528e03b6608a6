"""A real RTSP server for the tests: GStreamer's rtsp-server serving an H.264 MP4 clip.

Run by the SYSTEM python (``/usr/bin/python3``), which has GObject introspection (``gi``) from
Debian's packages ``python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good``::

    /usr/bin/python3 tests/rtsp_server.py PORT CLIP.mp4     # serves rtsp://127.0.0.1:PORT/clip

Each client gets its own session from the clip's start, paced in real time; the clip ends with an
end of stream. Prints ``ready`` once it listens. ``--check`` only tests that everything needed is
installed (exit 0) or prints what is missing (exit 1).
"""

import sys

ELEMENTS = ("filesrc", "qtdemux", "rtph264pay")


def load():
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    missing = [e for e in ELEMENTS if Gst.ElementFactory.find(e) is None]
    if missing:
        raise ImportError("GStreamer elements missing: " + ", ".join(missing))
    return GLib, Gst, GstRtspServer


def main(argv):
    if argv[1:] == ["--check"]:
        try:
            load()
        except (ImportError, ValueError) as exc:
            print(exc)
            return 1
        return 0
    port, clip = argv[1], argv[2]
    GLib, _, GstRtspServer = load()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch('( filesrc location="%s" ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )'
                       % clip.replace('"', ""))
    factory.set_shared(False)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        print("cannot listen on port %s" % port, flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
