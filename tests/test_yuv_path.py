"""The YUV path: decoded 4:2:0 planes enhanced without a full-size RGB picture, encoded as they are."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from lowlight_rt.bench import rgb_to_planes
from lowlight_rt.inference import Engine
from lowlight_rt.inference.cpu import Workspace, apply_operator_numpy, apply_operator_yuv
from lowlight_rt.frames import SWS_TO_RGB, Frame, YuvPlanes, rgb_to_yuv_matrix, yuv_to_rgb_matrix
from lowlight_rt.config import RunConfig
from lowlight_rt.jobs import run_job
from lowlight_rt.models import create_model
from lowlight_rt.sinks import VideoFileSink
from lowlight_rt.sources import FileSource
from tests import media


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def planes_psnr(a: YuvPlanes, b: YuvPlanes) -> float:
    return psnr(np.concatenate([a.y.ravel(), a.u.ravel(), a.v.ravel()]),
                np.concatenate([b.y.ravel(), b.u.ravel(), b.v.ravel()]))


def first_av_frame(path) -> av.VideoFrame:
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return media.make_clip(tmp_path_factory.mktemp("yuv") / "clip.mp4", width=352, height=240, frames=12)


def smooth_operator(h: int, w: int, channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth (offset 0..255 units, gain) grid like the models give: ``(h, w, 3)``, ``(h, w, channels)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(3 * xx + k) * np.cos(2 * yy - k) for k in range(3)], -1)
    offset = (12 + 8 * base + rng.normal(0, 0.5, (h, w, 3))).astype(np.float32)
    gain = (2.0 + 0.6 * base[..., :channels] * np.array([1.0, -0.7, 0.4])[:channels]).astype(np.float32)
    return offset, gain


def test_matrices_are_inverse_and_standard():
    for m in ("bt601", "bt709"):
        assert np.allclose(yuv_to_rgb_matrix(m) @ rgb_to_yuv_matrix(m), np.eye(3))
    # BT.709 luma row, limited range: 219/255 * (0.2126, 0.7152, 0.0722)
    assert np.allclose(rgb_to_yuv_matrix("bt709")[0], np.array([0.2126, 0.7152, 0.0722]) * 219 / 255)


def test_planes_are_views_and_convert_like_the_decoder(clip):
    vf = first_av_frame(clip)
    planes = YuvPlanes.from_av(vf)
    assert planes.y.shape == (240, 352) and planes.u.shape == planes.v.shape == (120, 176)
    assert planes.matrix == "bt601"  # untagged: what swscale converts it as
    reference = vf.to_ndarray(format="rgb24", threads=1, interpolation=SWS_TO_RGB)
    frame = Frame(image=None, index=0, yuv=planes)
    assert (frame.width, frame.height) == (352, 240) and not frame.has_rgb  # size without converting
    assert np.array_equal(frame.image, reference) and frame.has_rgb
    with pytest.raises(ValueError):
        Frame(image=None, index=0)


def test_unsupported_frames_stay_on_the_rgb_path():
    rgb = np.zeros((48, 64, 3), np.uint8)
    assert YuvPlanes.from_av(av.VideoFrame.from_ndarray(rgb, format="rgb24")) is None        # not 4:2:0
    odd = av.VideoFrame.from_ndarray(np.zeros((49, 64, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    assert YuvPlanes.from_av(odd) is None                                                      # odd height
    full = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    full.color_range = 2
    assert YuvPlanes.from_av(full) is None                                                     # full range


def test_small_rgb_from_planes_matches_downsampled_rgb(clip):
    import cv2

    vf = first_av_frame(clip)
    planes = YuvPlanes.from_av(vf)
    full = vf.to_ndarray(format="rgb24", threads=1, interpolation=SWS_TO_RGB)
    small = planes.resized_rgb(176, 120)
    assert small.shape == (120, 176, 3)
    assert np.abs(small.astype(int) - cv2.resize(full, (176, 120), interpolation=cv2.INTER_AREA)).mean() < 1.5


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_small_rgb_from_planes_is_the_conversion_and_black_and_white_stays_grey(matrix):
    """Within a code of the exact conversion, and a black-and-white picture (chroma 128) gives
    R = G = B exactly (the network sees no colour to correct)."""
    from lowlight_rt.frames import yuv_to_rgb_matrix

    rng = np.random.default_rng(2)
    y = rng.integers(16, 236, (120, 176), dtype=np.uint8)
    u, v = (rng.integers(16, 241, (60, 88), dtype=np.uint8) for _ in range(2))
    small = YuvPlanes(y, u, v, matrix).resized_rgb(88, 60)      # the chroma size: only luma is averaged
    y2 = y.reshape(60, 2, 88, 2).mean(axis=(1, 3))
    yuv = np.stack([np.floor(y2 + 0.5), u, v], axis=-1) - [16.0, 128.0, 128.0]
    exact = np.clip(np.rint(yuv @ yuv_to_rgb_matrix(matrix).T), 0, 255)
    assert np.abs(small.astype(int) - exact).max() <= 1
    neutral = np.full_like(u, 128)
    grey = YuvPlanes(y, neutral, neutral, matrix).resized_rgb(64, 40)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    y3 = cv2.resize(cv2.resize(y, (88, 60), interpolation=cv2.INTER_AREA), (64, 40), interpolation=cv2.INTER_AREA)
    assert np.array_equal(grey[..., 0], np.clip(np.rint((y3 - 16.0) * 255 / 219), 0, 255).astype(np.uint8))


def test_identity_operator_gives_the_input_back():
    rng = np.random.default_rng(1)
    planes = rgb_to_planes(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    out = apply_operator_yuv(planes, np.zeros((8, 12, 3), np.float32), np.ones((8, 12, 1), np.float32))
    for a, b in ((out.y, planes.y), (out.u, planes.u), (out.v, planes.v)):
        assert np.abs(a.astype(int) - b).max() <= 1


@pytest.mark.parametrize("channels", [1, 3])
def test_operator_in_yuv_matches_the_rgb_path(clip, channels):
    """Against the RGB path (RGB operator, then the sink's RGB -> 4:2:0): luma exact to a code with a
    one-channel gain, and the whole picture > 40 dB with a per-channel gain."""
    vf = first_av_frame(clip)
    planes = YuvPlanes.from_av(vf)
    offset, gain = smooth_operator(24, 40, channels)
    reference = rgb_to_planes(apply_operator_numpy(vf.to_ndarray(format="rgb24", threads=1,
                                                                 interpolation=SWS_TO_RGB), offset, gain))
    out = apply_operator_yuv(planes, offset, gain, out_matrix="bt709")   # BT.601 (untagged) in, BT.709 out
    assert out.matrix == "bt709" and out.y.shape == planes.y.shape and out.u.shape == planes.u.shape
    assert planes_psnr(out, reference) > 40.0
    if channels == 1:
        assert psnr(out.y, reference.y) > 45.0


@pytest.mark.parametrize("channels", [1, 3])
def test_luma_below_black_is_read_as_black_like_the_rgb_path(channels):
    """Sensor noise on a dark frame puts many luma samples below 16; the RGB path's conversion clips them to
    black, and the gain must not lift their noise into the picture on the YUV path either."""
    rng = np.random.default_rng(7)
    h, w = 96, 128
    y = np.clip(np.rint(18 + rng.normal(0, 4, (h, w))), 0, 255).astype(np.uint8)   # ~30 % below 16
    c = lambda: np.clip(np.rint(128 + rng.normal(0, 1, (h // 2, w // 2))), 0, 255).astype(np.uint8)
    planes = YuvPlanes(y, c(), c(), "bt709")
    assert (planes.y < 16).mean() > 0.25
    offset, gain = smooth_operator(12, 16, channels, seed=5)
    gain *= 3.0
    reference = rgb_to_planes(apply_operator_numpy(planes.to_rgb(), offset, gain))
    out = apply_operator_yuv(planes, offset, gain)
    assert psnr(out.y, reference.y) > 40.0, psnr(out.y, reference.y)
    assert abs(float(out.y.mean()) - float(reference.y.mean())) < 1.0


def test_scalar_gain_operator_on_bt601_planes_writes_bt709_like_the_rgb_path(clip):
    """A BT.601 input (most SD and untagged video) with a one-channel gain takes the fast scalar path
    with the matrix change folded in; it must still match the RGB path."""
    vf = first_av_frame(clip).reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
    vf.colorspace, vf.color_range = 5, 1       # SMPTE170M (BT.601), limited
    planes = YuvPlanes.from_av(vf)
    assert planes.matrix == "bt601"
    offset, gain = smooth_operator(24, 40, 1, seed=3)
    reference = rgb_to_planes(apply_operator_numpy(planes.to_rgb(), offset, gain))
    out = apply_operator_yuv(planes, offset, gain, out_matrix="bt709")
    assert out.matrix == "bt709"
    assert psnr(out.y, reference.y) > 45.0 and planes_psnr(out, reference) > 42.0


def bt601_planes(rgb: np.ndarray) -> YuvPlanes:
    """``(H, W, 3)`` uint8 RGB -> BT.601 limited-range planes, tagged SMPTE 170M, the sink's conversion."""
    from lowlight_rt.frames import SWS_FROM_RGB

    vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG", interpolation=SWS_FROM_RGB)
    vf.colorspace, vf.color_range = 6, 1
    return YuvPlanes.from_av(vf)


@pytest.mark.parametrize("channels", [1, 3])
def test_operator_keeps_the_input_matrix_by_default(clip, channels):
    """No ``out_matrix``: the planes come back in the input's matrix (what a file job writes), matching
    the RGB path converted to that matrix; with a one-channel gain luma and chroma need nothing else."""
    vf = first_av_frame(clip)
    planes = YuvPlanes.from_av(vf)
    assert planes.matrix == "bt601"
    offset, gain = smooth_operator(24, 40, channels, seed=4)
    reference = bt601_planes(apply_operator_numpy(planes.to_rgb(), offset, gain))
    out = apply_operator_yuv(planes, offset, gain)
    assert out.matrix == "bt601"
    assert planes_psnr(out, reference) > 40.0
    if channels == 1:
        assert psnr(out.y, reference.y) > 45.0 and planes_psnr(out, reference) > 44.0


@pytest.mark.parametrize("matrix,channels", [("bt709", 1), ("bt601", 1), ("bt709", 3), ("bt601", 3)])
def test_workspace_reuse_gives_the_same_planes_and_never_hands_out_scratch(matrix, channels):
    """The backend reuses scratch arrays from frame to frame: results must equal fresh-array calls,
    and a later call must not overwrite an earlier result (the sink may still be encoding it)."""
    rng = np.random.default_rng(5)
    ws = Workspace()
    results, fresh = [], []
    for seed in range(3):
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        planes = rgb_to_planes(rgb)
        planes.matrix = matrix
        offset, gain = smooth_operator(6, 8, channels, seed=seed)
        results.append((apply_operator_yuv(planes, offset, gain, workspace=ws),
                        apply_operator_numpy(rgb, offset, gain, workspace=ws)))
        fresh.append((apply_operator_yuv(planes, offset, gain), apply_operator_numpy(rgb, offset, gain)))
    for (yuv, rgb), (yuv_ref, rgb_ref) in zip(results, fresh):   # compared after all calls
        assert np.array_equal(rgb, rgb_ref)
        for name in "yuv":
            assert np.array_equal(getattr(yuv, name), getattr(yuv_ref, name))
    # the same shape twice reuses the array; another shape replaces it
    a = ws.get("x", (4, 5))
    assert ws.get("x", (4, 5)) is a and ws.get("x", (5, 4)) is not a and ws.get("x", (5, 4), np.uint8).dtype == np.uint8


def test_sink_encodes_planes_as_they_are(tmp_path, clip):
    """x264 at CRF 0 is lossless in 4:2:0: what the sink got is exactly what the file holds."""
    src = FileSource(clip)
    rng = np.random.default_rng(2)
    written = [rgb_to_planes(rng.integers(0, 256, (240, 352, 3), dtype=np.uint8)) for _ in range(3)]
    sink = VideoFileSink(tmp_path / "o.mp4", 352, 240, time_base=src.info.time_base, fps=src.info.fps, crf=0,
                         preset="ultrafast")
    for i, planes in enumerate(written):
        sink.write(Frame(image=None, index=i, pts=i * 512, time_base=src.info.time_base, yuv=planes), planes)
    sink.close()
    src.stop()
    with av.open(str(tmp_path / "o.mp4")) as c:
        got = [YuvPlanes.from_av(f) for f in c.decode(video=0)]
    assert len(got) == 3
    for a, b in zip(got, written):
        assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_sink_writes_and_tags_planes_in_its_matrix(tmp_path, clip, matrix):
    """BT.601 planes: stored as they are by a BT.601 sink (tagged SMPTE 170M), converted by a BT.709 one
    (tagged BT.709); either file shows the same picture."""
    rng = np.random.default_rng(3)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (240, 352, 3), dtype=np.uint8), (0, 0), 3)
    planes = bt601_planes(rgb)
    sink = VideoFileSink(tmp_path / "o.mp4", 352, 240, time_base=None, fps=25, crf=0, preset="ultrafast",
                         matrix=matrix)
    for i in range(2):
        sink.write(Frame(image=None, index=i, yuv=planes), planes)
    sink.close()
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert c.streams.video[0].codec_context.colorspace == {"bt601": 6, "bt709": 1}[matrix]
        got = [YuvPlanes.from_av(f) for f in c.decode(video=0)]
    assert len(got) == 2 and got[0].matrix == matrix
    if matrix == "bt601":
        assert np.array_equal(got[0].y, planes.y) and np.array_equal(got[0].u, planes.u)
    assert psnr(got[0].to_rgb(), planes.to_rgb()) > 38.0
    with pytest.raises(ValueError):
        VideoFileSink(tmp_path / "p.mp4", 352, 240, time_base=None, fps=25, matrix="bt2020")


def test_file_job_takes_the_yuv_path_without_full_size_rgb(tmp_path, clip, monkeypatch):
    """(The network runs below the clip's size, 280x192: at full size it would need the RGB picture.)"""
    conversions = []
    original = YuvPlanes.to_rgb
    monkeypatch.setattr(YuvPlanes, "to_rgb", lambda self: conversions.append(1) or original(self))
    outputs = {}
    for yuv in (True, False):
        engine = Engine(create_model("classical"), device="cpu", threads=1)
        out = tmp_path / f"{'yuv' if yuv else 'rgb'}.mp4"
        config = RunConfig(source=str(clip), out=str(out), quiet=True, yuv=yuv, crf=0, preset="ultrafast")
        assert run_job(config, engine) == 0
        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.colorspace == 6   # the untagged input's BT.601, kept
            outputs[yuv] = [f.to_ndarray(format="rgb24", interpolation=SWS_TO_RGB) for f in c.decode(video=0)]
        if yuv:
            assert conversions == []  # no frame went through full-size RGB
    assert len(outputs[True]) == len(outputs[False]) == 12
    assert psnr(np.stack(outputs[True]), np.stack(outputs[False])) > 38.0


def test_side_by_side_and_non_affine_models_stay_rgb(tmp_path, clip):
    from lowlight_rt.run import use_yuv_path

    class FakeSink(VideoFileSink):
        def __init__(self):  # noqa: D401 - only the type matters here
            pass

    assert use_yuv_path(FakeSink(), RunConfig()) is True
    assert use_yuv_path(FakeSink(), RunConfig(side_by_side=True)) is False
    assert use_yuv_path(FakeSink(), RunConfig(yuv=False)) is False
    # a model that is not an affine operator gets RGB frames even when the pipeline asks for YUV
    engine = Engine(create_model("unet"), device="cpu", threads=1, proc_size=0)
    # ... and the run does not ask: the capture thread converts to RGB, not the inference thread
    assert not engine.accepts_yuv() and use_yuv_path(FakeSink(), RunConfig(), engine) is False
    assert use_yuv_path(FakeSink(), RunConfig(), Engine(create_model("classical"), device="cpu", threads=1)) is True
    vf = first_av_frame(clip)
    frame = Frame(image=None, index=0, yuv=YuvPlanes.from_av(vf))
    out = engine.enhance([frame], yuv=True)[0]
    assert isinstance(out, np.ndarray) and out.shape == (240, 352, 3)


def test_sources_report_the_matrix_the_output_keeps(tmp_path, clip):
    """``SourceInfo.yuv_matrix``: BT.601 for an untagged file, BT.709 for a tagged one, ``None`` (the sink's
    BT.709 default) for full range, which the YUV path does not read."""
    from lowlight_rt.bench import scale_clip

    src = FileSource(clip)
    assert src.info.yuv_matrix == "bt601"
    src.stop()
    tagged = scale_clip(clip, tmp_path / "709.mp4", width=176, height=120, seconds=0.2)
    src = FileSource(tagged)
    assert src.info.yuv_matrix == "bt709"
    src.stop()
    with av.open(str(tmp_path / "full.mp4"), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
        for i in range(3):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
                              .reformat(format="yuvj420p")))
        out.mux(vs.encode())
    src = FileSource(tmp_path / "full.mp4")
    assert src.info.yuv_matrix is None
    src.stop()
