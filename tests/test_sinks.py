"""Sinks: MP4 round trips (frames, pts, audio bytes, metadata), odd sizes, partial files, bad outputs."""

from __future__ import annotations

import inspect
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lowlight_rt.errors import OutputError
from lowlight_rt.frames import Frame
from lowlight_rt.sinks import (
    ImageFileSink,
    ImageFolderSink,
    LatestFrameSink,
    NullSink,
    Sink,
    VideoFileSink,
)
from lowlight_rt.sources import open_source
from lowlight_rt.sources.images import read_image
from tests import media


def _sink_for(src, out, **kw) -> VideoFileSink:
    i = src.info
    return VideoFileSink(out, i.width, i.height, time_base=i.time_base, fps=i.fps, audio_from=i.path, **kw)


def _round_trip(inp: Path, out: Path, *, stop_after: int | None = None, **kw) -> list[Frame]:
    """Identity enhancement: every input frame written as is."""
    frames = []
    with open_source(inp) as src:
        sink = _sink_for(src, out, **kw)
        for f in src:
            sink.write(f, f.image)
            frames.append(f)
            if stop_after is not None and len(frames) == stop_after:
                break
        sink.close(partial=stop_after is not None)
    return frames


def _input_times(path: Path) -> list[Fraction]:
    """Every frame time (s) of ``path``'s video, decoded with PyAV directly: the reference for the sink,
    independent of ``FileSource`` (which only feeds the sink here)."""
    return media.read_video_pts(path)[0]


def test_round_trip_frames_pts_audio_metadata(clip, tmp_path):
    out = tmp_path / "out.mp4"
    frames_in = _round_trip(clip, out)
    times_out, size = media.read_video_pts(out)
    assert len(times_out) == len(frames_in) == 30
    assert times_out == _input_times(clip)  # exact, in seconds
    assert size == (160, 96)
    audio_in, audio_out = media.read_audio_packets(clip), media.read_audio_packets(out)
    assert len(audio_out) == 1 and len(audio_out[0]) > 10
    assert audio_out == audio_in  # byte-identical packets, same count and order
    assert media.count_decodable_frames(out) == 30  # strict decode: playable, no errors
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "dark test clip"
        v = c.streams.video[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert c.streams.audio[0].metadata.get("language") == "eng"
    # the picture survives (identity enhancement, the default crf)
    with open_source(out) as back:
        decoded = [f.image for f in back]
    err = np.mean([np.abs(a.astype(int) - b.image).mean() for a, b in zip(decoded, frames_in)])
    assert err < 3.0


def test_round_trip_vfr(vfr_clip, tmp_path):
    out = tmp_path / "vfr_out.mp4"
    _round_trip(vfr_clip, out)
    times_out, _ = media.read_video_pts(out)
    assert times_out == _input_times(vfr_clip)
    steps = np.diff([float(t) for t in times_out])
    assert steps.max() > 1.5 * steps.min()
    assert media.read_audio_packets(out) == media.read_audio_packets(vfr_clip)


def test_round_trip_from_mpegts_keeps_start_offset(ts_clip, tmp_path):
    out = tmp_path / "from_ts.mp4"
    _round_trip(ts_clip, out)
    times_out, _ = media.read_video_pts(out)
    assert times_out[0] > 0 and times_out == _input_times(ts_clip)


def test_two_audio_streams_copied(two_audio_clip, tmp_path):
    out = tmp_path / "two.mp4"
    _round_trip(two_audio_clip, out)
    assert media.read_audio_packets(out) == media.read_audio_packets(two_audio_clip)
    with av.open(str(out)) as c:
        assert [s.metadata.get("language") for s in c.streams.audio] == ["eng", "fra"]


def test_odd_size_padded_to_even_full_picture(odd_clip, tmp_path):
    out = tmp_path / "odd_out.mp4"
    frames_in = _round_trip(odd_clip, out)
    times_out, size = media.read_video_pts(out)
    assert size == (854, 482) and len(times_out) == 6
    with open_source(out) as back:
        f = back.read(timeout=5)
    inner = f.image[:481, :853].astype(int)
    assert np.abs(inner - frames_in[0].image).mean() < 3.0
    # the extra column / row replicates the edge
    assert np.abs(f.image[:481, 853].astype(int) - frames_in[0].image[:, 852]).mean() < 6.0


def test_odd_size_crop_option(odd_clip, tmp_path):
    out = tmp_path / "odd_crop.mp4"
    _round_trip(odd_clip, out, odd_size="crop")
    assert media.read_video_pts(out)[1] == (852, 480)


def test_side_by_side_doubles_width(clip, tmp_path):
    out = tmp_path / "sbs.mp4"
    with open_source(clip) as src:
        sink = _sink_for(src, out, side_by_side=True)
        for f in src:
            sink.write(f, np.full_like(f.image, 200))
        sink.close()
    with open_source(out) as back:
        img = back.read(timeout=5).image
    assert img.shape == (96, 320, 3)
    assert img[:, :160].mean() < 60 and abs(img[:, 170:].mean() - 200) < 3


def test_audio_is_copied_as_video_is_written(clip, tmp_path):
    with open_source(clip) as src:
        sink = _sink_for(src, tmp_path / "interleave.mp4")
        for f in src:
            sink.write(f, f.image)
            if f.index == 14:
                break
        # half the video written -> about half the audio already copied (48 packets in total)
        assert 15 <= sink.audio_packets <= 30
        sink.close(partial=True)


def test_partial_close_is_playable_and_audio_stops_with_video(clip, tmp_path):
    out = tmp_path / "partial.mp4"
    _round_trip(clip, out, stop_after=10)
    times_out, _ = media.read_video_pts(out)
    assert len(times_out) == 10 and media.count_decodable_frames(out) == 10
    full = media.read_audio_packets(clip)[0]
    part = media.read_audio_packets(out)[0]
    assert 0 < len(part) < len(full)
    assert part == full[: len(part)]  # a prefix of the original audio, byte for byte
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        last = max(p.pts for p in c.demux(a) if p.pts is not None)
        assert float(last * a.time_base) <= float(times_out[-1]) + 1 / 30 + 0.03


def test_keyboard_interrupt_in_with_block_finalises(clip, tmp_path):
    out = tmp_path / "ctrl_c.mp4"
    with open_source(clip) as src, pytest.raises(KeyboardInterrupt):
        with _sink_for(src, out) as sink:
            for f in src:
                sink.write(f, f.image)
                if f.index == 6:
                    raise KeyboardInterrupt
    assert sink.closed and media.count_decodable_frames(out) == 7


def test_frames_without_pts_use_fps_and_no_audio(tmp_path):
    out = tmp_path / "nopts.mp4"
    sink = VideoFileSink(out, 64, 48, time_base=None, fps=25, audio_from=None)
    for i in range(10):
        sink.write(Frame(image=np.zeros((48, 64, 3), np.uint8), index=i), np.full((48, 64, 3), i * 20, np.uint8))
    sink.close()
    times, size = media.read_video_pts(out)
    assert size == (64, 48) and times == [Fraction(i, 25) for i in range(10)]
    assert media.read_audio_packets(out) == []


def test_silent_input_and_wrong_enhanced_shape(silent_clip, tmp_path):
    out = tmp_path / "silent_out.mp4"
    with open_source(silent_clip) as src:
        sink = _sink_for(src, out)
        f = src.read(timeout=5)
        with pytest.raises(ValueError):
            sink.write(f, f.image[:10])
        sink.write(f, f.image)
        sink.close()
        sink.close()  # idempotent
    assert media.count_decodable_frames(out) == 1


# -- bad outputs ----------------------------------------------------------------------------------
def _kw():
    return dict(time_base=Fraction(1, 30), fps=30)


def test_output_folder_missing(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        VideoFileSink(tmp_path / "no" / "out.mp4", 64, 48, **_kw())


def test_output_parent_is_a_file_or_output_is_a_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        VideoFileSink(tmp_path / "f" / "out.mp4", 64, 48, **_kw())
    with pytest.raises(OutputError, match="is a directory"):
        VideoFileSink(tmp_path, 64, 48, **_kw())


def test_output_equal_to_input_leaves_input_untouched(clip, tmp_path):
    inp = media.copy(clip, tmp_path / "in.mp4")
    before = inp.read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        VideoFileSink(inp, 160, 96, audio_from=inp, **_kw())
    assert inp.read_bytes() == before


def test_unknown_container_is_output_error_and_leaves_no_file(tmp_path):
    with pytest.raises(OutputError) as e:
        VideoFileSink(tmp_path / "out.notaformat", 64, 48, **_kw())
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out.notaformat").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            VideoFileSink(ro / "out.mp4", 64, 48, **_kw())
        with pytest.raises(OutputError, match="not writable"):
            ImageFolderSink(ro)
    finally:
        ro.chmod(0o700)


# -- image sinks ----------------------------------------------------------------------------------
def test_image_folder_round_trip_same_names_sizes_formats(image_folder, tmp_path):
    out_dir = tmp_path / "out_images"
    sink = ImageFolderSink(out_dir, input_dir=image_folder)
    with open_source(image_folder) as src:
        frames = list(src)
        for f in frames:
            sink.write(f, 255 - f.image)
    sink.close()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f.name for f in frames)
    for f in frames:
        back = read_image(out_dir / f.name)
        assert back.shape == f.image.shape
        tol = 4 if f.name.endswith(".jpg") else 0  # lossless formats are exact
        assert np.abs(back.astype(int) - (255 - f.image)).mean() <= tol
    assert (out_dir / "img1.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert (out_dir / "small.bmp").read_bytes()[:2] == b"BM"


def test_image_sinks_refuse_to_overwrite_inputs(image_folder, tmp_path):
    with pytest.raises(OutputError, match="input folder"):
        ImageFolderSink(image_folder, input_dir=image_folder)
    sink = ImageFolderSink(image_folder)  # not told about the input: still refuses per file
    with open_source(image_folder) as src:
        f = src.read(timeout=5)
    before = (image_folder / f.name).read_bytes()
    with pytest.raises(OutputError, match="overwrite the input"):
        sink.write(f, f.image)
    assert (image_folder / f.name).read_bytes() == before
    with pytest.raises(OutputError, match="does not exist"):
        ImageFolderSink(tmp_path / "a" / "b")
    with pytest.raises(OutputError, match="is the input"):
        ImageFileSink(image_folder / "img2.png", input_path=image_folder / "img2.png")


def test_image_file_sink(tmp_path):
    sink = ImageFileSink(tmp_path / "clean ☀.png")
    img = np.random.default_rng(0).integers(0, 255, (21, 33, 3), dtype=np.uint8)
    sink.write(Frame(image=img, index=0), img)
    sink.close()
    assert np.array_equal(read_image(tmp_path / "clean ☀.png"), img)


# -- memory sinks ---------------------------------------------------------------------------------
def test_latest_frame_sink_keeps_newest_thread_safe():
    sink = LatestFrameSink()
    assert sink.latest() is None
    img = np.zeros((2, 2, 3), np.uint8)

    def writer(offset):
        for i in range(200):
            sink.write(Frame(image=img, index=offset + i), img)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    count, pair = sink.wait_newer(0, timeout=2)
    assert count >= 1 and pair is not None
    for t in threads:
        t.join()
    assert sink.count == 800
    assert sink.latest()[0].index in {k * 1000 + 199 for k in range(4)}  # some writer's last frame
    assert sink.wait_newer(800, timeout=0.05)[0] == 800  # times out, returns the current state
    sink.close()
    assert sink.latest() is not None


def test_every_sink_honours_the_protocol(tmp_path):
    """``isinstance(s, Sink)`` only checks that ``write`` and ``close`` exist. Every sink must also take
    the protocol's arguments (``write(frame, enhanced)``, ``close(partial=False)``), keep what it was
    given, and accept a second ``close`` (the pipeline closes on error paths too)."""
    write_params = list(inspect.signature(Sink.write).parameters)
    close_params = inspect.signature(Sink.close).parameters
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    frame = Frame(image=np.zeros_like(img), index=0, pts=0, time_base=Fraction(1, 30))
    sinks = {"null": NullSink(), "latest": LatestFrameSink(), "folder": ImageFolderSink(tmp_path / "o"),
             "file": ImageFileSink(tmp_path / "one.png"),
             "video": VideoFileSink(tmp_path / "p.mp4", 16, 16, **_kw())}
    for name, s in sinks.items():
        assert isinstance(s, Sink), name
        assert list(inspect.signature(type(s).write).parameters) == write_params, name
        params = inspect.signature(type(s).close).parameters
        assert list(params) == list(close_params) and params["partial"].default is False, name
        s.write(frame=frame, enhanced=img)
        s.close(partial=True)
        s.close()
    assert sinks["null"].frames_written == 1
    got_frame, got = sinks["latest"].latest()
    assert got_frame is frame and np.array_equal(got, img)
    assert np.array_equal(read_image(tmp_path / "o" / "000000.png"), img)
    assert np.array_equal(read_image(tmp_path / "one.png"), img)
    assert media.count_decodable_frames(tmp_path / "p.mp4") == 1


def test_display_rotation_and_aspect_kept(tmp_path):
    inp = media.make_clip(tmp_path / "portrait.mp4", frames=5, rotation=-90, seed=6)
    out = tmp_path / "portrait_out.mp4"
    with open_source(inp) as src:
        assert src.info.rotation == -90 and (src.info.width, src.info.height) == (160, 96)
    _round_trip(inp, out)
    with av.open(str(out)) as c:
        f = next(c.decode(video=0))
        assert f.rotation == -90 and (f.width, f.height) == (160, 96)
    explicit = tmp_path / "explicit.mp4"
    with open_source(inp) as src:
        sink = _sink_for(src, explicit, rotation=0)
        for f in src:
            sink.write(f, f.image)
        sink.close()
    with av.open(str(explicit)) as c:
        assert next(c.decode(video=0)).rotation == 0


# -- recordings started mid-input (viewer's record button) ----------------------------------------
AUDIO_FRAME_S = 1024 / media.AUDIO_RATE  # one AAC frame


def _audio_timeline(path: Path, stream: int = 0) -> list[tuple[float, float, bytes]]:
    """``(start s, end s, payload)`` of every audio packet of one audio stream."""
    with av.open(str(path)) as c:
        a = c.streams.audio[stream]
        return [(float(p.pts * a.time_base), float((p.pts + p.duration) * a.time_base), bytes(p))
                for p in c.demux(a) if p.size]


def _record_range(inp: Path, out: Path, first: int, last: int, *, partial: bool, **kw):
    """Write input frames ``first..last`` (inclusive); returns (written frames, sink)."""
    frames = []
    with open_source(inp) as src:
        sink = _sink_for(src, out, **kw)
        for f in src:
            if f.index >= first:
                sink.write(f, f.image)
                frames.append(f)
            if f.index == last:
                break
        sink.close(partial=partial)
    return frames, sink


def _check_audio_follows_video(inp: Path, out: Path, start: Fraction) -> list[tuple[float, float, bytes]]:
    """Audio of ``out`` starts within one audio frame of 0 and every packet sits at its source time
    minus ``start`` (the A/V offset of the source at ``start``); returns the output's audio timeline."""
    src, got = _audio_timeline(inp), _audio_timeline(out)
    assert got and 0 <= got[0][0] < AUDIO_FRAME_S
    # byte-identical packets (MPEG-TS AAC carries 7 ADTS header bytes the MP4 muxer strips)
    k = next(i for i, p in enumerate(src) if p[2].endswith(got[0][2]))
    assert src[k][0] >= float(start) > src[k][0] - AUDIO_FRAME_S  # the first packet at/after the start
    for (t_out, _, data), (t_in, _, data_in) in zip(got, src[k:]):
        assert data_in.endswith(data)
        assert abs(t_out - (t_in - float(start))) < 1e-3  # same A/V offset as the source (1 tick of 1/15360 s)
    return got


@pytest.mark.parametrize("name", ["clip", "ts_clip", "vfr_clip"])
def test_rebased_recording_from_mid_input_starts_at_zero_in_sync(name, request, tmp_path):
    inp = request.getfixturevalue(name)
    out = tmp_path / "mid.mp4"
    frames, sink = _record_range(inp, out, 15, 29, partial=False, rebase=True)
    ref = _input_times(inp)
    assert len(ref) == 30 and len(frames) == 15
    start = ref[15]
    assert sink.start_time == start and start > 0 and sink.frames_skipped == 0
    times_out, _ = media.read_video_pts(out)
    assert times_out[0] == 0
    assert times_out == [t - start for t in ref[15:]]  # one offset for all: VFR steps kept exactly
    assert media.count_decodable_frames(out) == 15
    audio = _check_audio_follows_video(inp, out, start)
    video_end = float(times_out[-1]) + float(times_out[-1] - times_out[-2])
    assert abs(audio[-1][1] - video_end) < 0.05
    assert abs((audio[-1][1] - audio[0][0]) - video_end) < 0.05  # audio duration ~ video duration


def test_recording_stopped_mid_input_ends_audio_at_its_last_frame(clip, tmp_path):
    out = tmp_path / "mid_stop.mp4"
    _record_range(clip, out, 15, 20, partial=True, rebase=True)
    times_out, _ = media.read_video_pts(out)
    assert len(times_out) == 6 and times_out[0] == 0
    audio = _check_audio_follows_video(clip, out, _input_times(clip)[15])
    video_end = float(times_out[-1]) + 1 / 30                # frame 20 ends here (0.2 s)
    assert video_end - AUDIO_FRAME_S < audio[-1][1] <= video_end + AUDIO_FRAME_S


def test_explicit_start_time_skips_earlier_frames(vfr_clip, tmp_path):
    out = tmp_path / "start_time.mp4"
    ref = _input_times(vfr_clip)
    start = ref[10]
    _, sink = _record_range(vfr_clip, out, 0, 29, partial=False, start_time=float(start))
    assert sink.frames_skipped == 10 and sink.frames_written == len(ref) - 10 == 20
    times_out, _ = media.read_video_pts(out)
    assert times_out == [t - start for t in ref[10:]]
    _check_audio_follows_video(vfr_clip, out, start)
    with pytest.raises(ValueError):
        VideoFileSink(tmp_path / "neg.mp4", 64, 48, start_time=-1.0, **_kw())


def test_rebase_without_pts_or_audio(tmp_path):
    out = tmp_path / "rebase_nopts.mp4"
    sink = VideoFileSink(out, 64, 48, time_base=None, fps=25, audio_from=None, rebase=True)
    for i in range(40, 45):
        sink.write(Frame(image=np.zeros((48, 64, 3), np.uint8), index=i), np.zeros((48, 64, 3), np.uint8))
    sink.close()
    assert media.read_video_pts(out)[0] == [Fraction(i, 25) for i in range(5)]
