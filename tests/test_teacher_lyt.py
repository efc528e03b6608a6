"""LYT-Net teacher through onnxruntime: loading, errors, any-size forward (published files: skip without ../shared).

The mechanics (resize, full-resolution transfer, transposition, batching, errors, fingerprint) run on
tiny hand-written ONNX identity graphs, so they need onnxruntime but not the shared files.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import torch

from lowlight_rt.errors import ModelError
from training.data.cache import teacher_fingerprint
from training.teachers import create_teacher, load_teacher
from training.teachers.lyt_net import KNOWN_SHA256, LYTNetONNX, load_lyt_net

SHARED = (Path(os.environ["LOWLIGHT_SHARED"]) if os.environ.get("LOWLIGHT_SHARED")
          else Path(__file__).resolve().parents[1] / ".." / "shared")
LYT_DIR = SHARED / "weights" / "lyt-net-onnx"
needs_shared = pytest.mark.skipif(not any(LYT_DIR.glob("*.onnx")), reason="../shared/weights/lyt-net-onnx absent")


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime")


# --- a minimal ONNX writer (protobuf by hand: the `onnx` package is not a dependency) ---------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_len(1, _len(2, d.encode()) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor = _int(1, 1) + _len(2, shape)  # elem_type FLOAT
    return _len(1, name.encode()) + _len(2, _len(1, tensor))


def identity_onnx(path: Path, dims: list[int | str]) -> Path:
    """An ONNX ``Identity`` graph ``x -> y`` with float input and output of shape ``dims``."""
    node = _len(1, b"x") + _len(2, b"y") + _len(4, b"Identity")
    graph = _len(1, node) + _len(2, b"g") + _len(11, _value_info("x", dims)) + _len(12, _value_info("y", dims))
    path.write_bytes(_int(1, 8) + _len(7, graph) + _len(8, _int(2, 13)))  # ir_version 8, opset 13
    return path


# --- without the shared files ----------------------------------------------------------------------

def test_mechanics_on_identity_exports(tmp_path, ort):
    """Identity "networks": resize down, run, carry back with detail gain 1 gives the input back."""
    folder = tmp_path / "lyt"
    folder.mkdir()
    identity_onnx(folder / "a_32x24.onnx", ["N", 24, 32, 3])
    identity_onnx(folder / "b_16x16.onnx", [1, 16, 16, 3])  # N fixed to 1: batches run one by one
    model = load_teacher(folder)
    assert isinstance(model, LYTNetONNX) and not model.training and model.num_parameters() == 0
    assert sorted(model.sizes) == [(16, 16), (32, 24)]
    for shape in [(2, 3, 45, 67), (1, 3, 70, 20), (2, 3, 16, 16), (1, 3, 5, 3)]:
        x = torch.rand(*shape, requires_grad=True)
        y = model(x)
        assert y.shape == x.shape and not y.requires_grad
        torch.testing.assert_close(y, x.detach(), atol=1e-5, rtol=0)
    assert model.pick(24, 32).hw == (24, 32) and model.pick(17, 15).hw == (16, 16)
    forced = load_lyt_net(folder, size="16x16")
    assert forced.pick(24, 32).hw == (16, 16)
    with pytest.raises(ModelError, match="no loaded file has size"):
        load_lyt_net(folder, size="640x360")
    assert model.enhance(torch.full((1, 3, 9, 11), 0.5), torch.zeros(1, 3, 3, 3)).shape == (1, 3, 9, 11)


def test_config_holds_sha256_and_fingerprint_follows_the_file(tmp_path, ort):
    path = identity_onnx(tmp_path / "m.onnx", ["N", 24, 32, 3])
    first = load_lyt_net(path)
    assert first.config["files"] == [str(path.resolve())]
    assert first.config["sha256"] == [hashlib.sha256(path.read_bytes()).hexdigest()]
    identity_onnx(path, ["N", 16, 32, 3])  # the same path, another file
    assert teacher_fingerprint(load_lyt_net(path)) != teacher_fingerprint(first)
    with pytest.raises(ModelError, match="changed since"):
        LYTNetONNX(**first.config)


def test_bad_files_raise_model_error(tmp_path, ort):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not a protobuf \x00\xff" * 10)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_lyt_net(junk)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_teacher(junk)
    nchw = identity_onnx(tmp_path / "nchw.onnx", [1, 3, 24, 32])
    with pytest.raises(ModelError, match="not a LYT-Net ONNX export"):
        load_teacher(nchw)
    with pytest.raises(ModelError, match="no such"):
        load_lyt_net(tmp_path / "missing.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no .onnx files"):
        load_teacher(tmp_path / "empty")
    twice = tmp_path / "twice"
    twice.mkdir()
    identity_onnx(twice / "a.onnx", ["N", 24, 32, 3])
    identity_onnx(twice / "b.onnx", ["N", 24, 32, 3])
    with pytest.raises(ModelError, match="both take 32x24"):
        load_lyt_net(twice)
    with pytest.raises(ModelError, match="only size"):
        load_teacher(twice, n_feat=3)


def test_without_onnxruntime(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ModelError, match="onnxruntime, which is not installed"):
        load_lyt_net(path)
    teacher = create_teacher("lyt_net")  # building it without files needs no onnxruntime
    with pytest.raises(ModelError, match="without ONNX files"):
        teacher(torch.rand(1, 3, 8, 8))


# --- the published LOL-v1 exports -----------------------------------------------------------------

@pytest.fixture(scope="module")
def lyt():
    pytest.importorskip("onnxruntime")
    if not any(LYT_DIR.glob("*.onnx")):
        pytest.skip("../shared/weights/lyt-net-onnx absent")
    return load_lyt_net(LYT_DIR)


@pytest.mark.shared
@needs_shared
def test_official_files_load(lyt):
    assert sorted(lyt.sizes) == [(320, 240), (640, 360), (800, 400)]
    names = [Path(f).name for f in lyt.config["files"]]
    assert lyt.config["sha256"] == [KNOWN_SHA256[n] for n in names]
    teacher = load_teacher("lyt_net")
    assert [Path(f).name for f in teacher.config["files"]] == names
    assert not any(p.requires_grad for p in teacher.parameters())


def _dark_scene(h: int, w: int, level: float) -> torch.Tensor:
    """A smooth colourful scene scaled to mean ~``level``, with a little noise."""
    g = torch.Generator().manual_seed(h * 10_000 + w)
    coarse = torch.rand(1, 3, 6, 8, generator=g)
    scene = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return (scene * level / scene.mean() + 0.005 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.mark.shared
@needs_shared
def test_odd_size_range_and_brightening(lyt):
    x = torch.cat([_dark_scene(45, 67, 0.06), _dark_scene(45, 67, 0.1)])
    y = lyt(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert (y.mean(dim=(1, 2, 3)) > 2 * x.mean(dim=(1, 2, 3))).all()
    torch.testing.assert_close(lyt(x[1:]), y[1:], atol=1e-5, rtol=0)  # batched == one by one


@pytest.mark.shared
@needs_shared
def test_large_size(lyt):
    x = _dark_scene(720, 1280, 0.05)
    assert lyt.pick(720, 1280).hw == (400, 800)
    y = lyt(x)
    assert y.shape == x.shape and 0.0 <= y.min() and y.max() <= 1.0
    assert y.mean() > 3 * x.mean()
