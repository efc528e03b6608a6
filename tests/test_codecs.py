"""Codec defaults and the run-time NVDEC / NVENC choice (tested on the CPU with fake codec lists)."""

from __future__ import annotations

import av
import pytest

from lowlight_rt import cli, codecs
from lowlight_rt.codecs import (GPU_DECODER, GPU_ENCODER, SOFTWARE_ENCODER, X264_CRF, X264_PRESET, choose_codecs,
                                codec_opens)
from lowlight_rt.sinks import VideoFileSink
from lowlight_rt.sources import FileSource
from tests import media

BOTH = {GPU_DECODER, GPU_ENCODER, "h264", "libx264"}


def test_gpu_codecs_used_when_listed_and_opening():
    opened = []
    choice = choose_codecs(None, available=BOTH, opens=lambda name, mode: opened.append((name, mode)) or True)
    assert (choice.decoder, choice.encoder, choice.gpu) == (GPU_DECODER, GPU_ENCODER, True)
    assert choice.options["cq"] == str(X264_CRF) and "crf" not in choice.options
    assert opened == [(GPU_DECODER, "r"), (GPU_ENCODER, "w")]  # each probed once, in its own mode


@pytest.mark.parametrize("available,opens,decoder,encoder,why", [
    ({"h264", "libx264"}, lambda n, m: True, None, SOFTWARE_ENCODER, "not in this FFmpeg build"),
    (BOTH, lambda n, m: False, None, SOFTWARE_ENCODER, "does not open"),
    (BOTH, lambda n, m: n == GPU_DECODER, GPU_DECODER, SOFTWARE_ENCODER, "h264_nvenc does not open"),
    (BOTH, lambda n, m: n == GPU_ENCODER, None, GPU_ENCODER, "h264_cuvid does not open"),
])
def test_falls_back_to_software_per_codec(available, opens, decoder, encoder, why):
    choice = choose_codecs(True, available=available, opens=opens)
    assert (choice.decoder, choice.encoder) == (decoder, encoder)
    assert any(why in note for note in choice.notes), choice.notes
    if encoder == SOFTWARE_ENCODER:
        assert choice.options == codecs.x264_options()


def test_software_requested_or_non_h264_input_never_probes_the_gpu_decoder():
    def never(name, mode):
        raise AssertionError("probed")

    assert choose_codecs(False, available=BOTH, opens=never).gpu is False
    choice = choose_codecs(True, source_codec="hevc", available=BOTH, opens=lambda n, m: n == GPU_ENCODER)
    assert choice.decoder is None and choice.encoder == GPU_ENCODER


def test_real_probe_here():
    """The software codecs open; the NVIDIA wrappers that PyAV lists open only with a GPU and driver."""
    assert codec_opens("libx264", "w") and codec_opens("h264", "r")
    assert not codec_opens("no_such_codec", "w")
    choice = choose_codecs(True)
    if GPU_ENCODER in av.codecs_available and not codec_opens(GPU_ENCODER, "w"):
        assert choice.encoder == SOFTWARE_ENCODER


def test_x264_options_from_one_place():
    assert codecs.x264_options() == {"crf": str(X264_CRF), "preset": X264_PRESET, "x264-params": "subme=1:partitions=i8x8,i4x4"}
    assert codecs.x264_options(23, "superfast", "film") == {"crf": "23", "preset": "superfast", "tune": "film"}
    assert "x264-params" not in codecs.x264_options(preset="slow")   # a chosen preset is x264's own


def test_default_x264_parameters_reach_the_encoder(tmp_path):
    """``subme=1`` and no inter sub-partitions are what libx264 runs with by default: its settings string in
    the written stream says so (``analyse=intra:inter`` flags; veryfast alone has inter 0x113: p8x8, b8x8)."""
    clip = media.make_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    out = tmp_path / "out.mp4"
    assert cli.main(["--input", str(clip), "--out", str(out), "--model", "classical", "--quiet"]) == 0
    data = out.read_bytes()
    start = data.index(b"x264 - core")
    settings = data[start:data.index(b"\0", start)].decode()
    assert " subme=1 " in settings and " me=hex " in settings, settings   # veryfast's search, subme 1
    assert " analyse=0x3:0x3 " in settings, settings                      # i4x4 + i8x8, nothing else


def test_sink_encodes_with_the_given_codec_and_options(tmp_path, monkeypatch):
    clip = media.make_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    seen = {}
    original = av.container.OutputContainer.add_stream

    def add_stream(self, codec_name, *a, **kw):
        seen["codec"] = codec_name
        return original(self, codec_name, *a, **kw)

    monkeypatch.setattr(av.container.OutputContainer, "add_stream", add_stream)
    src = FileSource(clip)
    sink = VideoFileSink(tmp_path / "o.mp4", 64, 48, time_base=src.info.time_base, fps=src.info.fps,
                         codec="libx264", codec_options={"crf": "30", "preset": "ultrafast"})
    assert seen["codec"] == "libx264" and sink._video.options == {"crf": "30", "preset": "ultrafast"}
    sink.close()
    src.stop()


def test_file_source_falls_back_when_the_decoder_does_not_open(tmp_path):
    clip = media.make_clip(tmp_path / "in.mp4", width=64, height=48, frames=5)
    src = FileSource(clip, decoder="no_such_decoder")
    assert src.decoder_used == "h264"
    src.start()
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.stop()
    assert len(frames) == 5 and src.stats.snapshot().get("decode_errors", 0) == 0


def test_file_source_decodes_with_an_explicit_decoder(tmp_path):
    """A decoder given by name (here FFmpeg's own h264, as NVDEC's h264_cuvid would be) decodes every frame."""
    clip = media.make_clip(tmp_path / "in.mp4", width=64, height=48, frames=5)
    src = FileSource(clip, decoder="h264")
    assert src._decoder is not None and src.decoder_used == "h264"
    src.start()
    n = 0
    while src.read() is not None:
        n += 1
    src.stop()
    assert n == 5
