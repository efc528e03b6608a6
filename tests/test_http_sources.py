"""http(s) inputs against a real HTTP server on 127.0.0.1: a URL serving a finite file is read like a
file (every frame in order, audio copied, ends at its end; ``--loop`` replays it); a URL that
streams without end is a live stream (newest frame wins)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from lowlight_rt.cli import main
from lowlight_rt.sources import FileSource, StreamSource, open_source
from tests import media


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; ``/live/NAME`` streams NAME slowly, with no length and no end in sight,
    like a live HTTP camera (MPEG-TS over HTTP)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self.path.startswith("/live/"):
            return super().do_GET()
        data = (Path(self.directory) / self.path[len("/live/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()  # no Content-Length: the body ends when the connection closes
        try:
            for _ in range(3):  # the "live" stream: the clip three times, 188-byte packets, paced
                for i in range(0, len(data), 188 * 32):
                    self.wfile.write(data[i:i + 188 * 32])
                    self.wfile.flush()
                    time.sleep(0.004)
        except (BrokenPipeError, ConnectionResetError):
            pass


class HttpServer:
    """A threaded HTTP server on 127.0.0.1 serving one folder."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("www")
    media.make_clip(folder / "night.mp4", frames=45, seed=11)  # 1.5 s, H.264 + AAC, faststart
    media.make_clip(folder / "night.ts", frames=45, seed=12)
    server = HttpServer(folder)
    yield server, folder
    server.close()


def run(*args) -> int:
    return main(["-q", *map(os.fspath, args)])


@pytest.mark.parametrize("name", ["night.mp4", "night.ts"])
def test_url_serving_a_file_is_enhanced_like_the_file(served, tmp_path, name, one_thread):
    """Every frame once, in order, with the input's timestamps; every audio packet copied; exit 0."""
    server, folder = served
    out = tmp_path / "out.mp4"
    assert run("--input", server.url(name), "--out", out) == 0
    times, _ = media.read_video_pts(out)
    original, _ = media.read_video_pts(folder / name)
    assert len(times) == 45
    assert [t - times[0] for t in times] == [t - original[0] for t in original]
    assert raw_aac(media.read_audio_packets(out)) == raw_aac(media.read_audio_packets(folder / name))


def raw_aac(streams: list[list[bytes]]) -> list[list[bytes]]:
    """AAC payloads without ADTS headers (MPEG-TS carries them, MP4 does not)."""
    return [[p[7:] if p[:2] in (b"\xff\xf1", b"\xff\xf9") else p for p in packets] for packets in streams]


def test_url_serving_a_file_opens_as_a_file_source(served):
    server, _ = served
    with open_source(server.url("night.mp4"), stream_options={"open_timeout": 5, "read_timeout": 5}) as src:
        frames = list(src)
    assert isinstance(src, FileSource) and not src.info.is_live
    assert len(frames) == 45 and [f.index for f in frames] == list(range(45))
    assert src.stats.dropped == 0 and src.stats.reconnects == 0


def test_loop_replays_a_url(served, tmp_path, one_thread):
    """``--loop``: the file starts over at its end, timestamps run on (here until --max-frames)."""
    server, _ = served
    out = tmp_path / "looped.mp4"
    assert run("--input", server.url("night.mp4"), "--loop", "--max-frames", "100", "--out", out) == 0
    times, _ = media.read_video_pts(out)
    assert len(times) == 100 and times == sorted(times) and times[-1] - times[0] > 3.2


def test_url_streaming_without_end_is_live(served):
    """A URL with no length and no duration (a live HTTP stream) stays a live, newest-frame source."""
    server, _ = served
    src = open_source(server.url("live/night.ts"), stream_options={"open_timeout": 5, "read_timeout": 5,
                                                                     "max_retries": 0})
    assert isinstance(src, StreamSource) and src.info.is_live
    with src:
        assert src.read(timeout=5) is not None
