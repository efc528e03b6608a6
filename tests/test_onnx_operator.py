"""The student's operator grid exported to ONNX and run by onnxruntime in the CPU engine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lowlight_rt.errors import ModelError
from lowlight_rt.frames import Frame
from lowlight_rt.inference.engine import Engine
from lowlight_rt.inference.onnx_operator import load_onnx_operator, probe_input
from lowlight_rt.models import create_model, load_checkpoint, save_checkpoint

pytest.importorskip("onnxruntime")

#: every operator step the shipped student uses, on a small network (random weights)
SHIPPED_STEPS = dict(color_prior=True, prior_pool=4, grey_black=0.02, grey_colour=0.08, highlight_guard=True,
                     keep_gate=True, temporal_alpha=0.35, motion=0.03, keep_from=0.25, keep_full=0.38,
                     detail_denoise=1.0, lift_limit=4.0, lit_hue=0.1, lit_keep=0.35, lit_desaturate=0.75,
                     mono=0.004, out_cap=3.0, out_cap_floor=0.05)


def _student(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("realtime", width=4, depth=1, default_proc_size=64, **SHIPPED_STEPS).eval()


@pytest.fixture(scope="module")
def exported() -> tuple[torch.nn.Module, bytes]:
    """A small student with every operator step and its ONNX export (about a minute: the exporter)."""
    pytest.importorskip("onnxscript")
    from training.onnx_export import export_operator_onnx

    model = _student()
    return model, export_operator_onnx(model)


def _frames(n: int, width: int = 160, height: int = 96) -> list[Frame]:
    """Dark, noisy frames with a lit window, moving a little from frame to frame (uint8 RGB)."""
    rng = np.random.default_rng(4)
    frames = []
    for i in range(n):
        img = rng.normal(14, 4, (height, width, 3))
        img[30:60, 90 + i:130 + i] += 120
        frames.append(Frame(image=np.ascontiguousarray(img.clip(0, 255).astype(np.uint8)), index=i))
    return frames


@pytest.mark.slow
def test_the_export_matches_the_torch_operator_at_other_sizes_and_batches(exported) -> None:
    model, blob = exported
    op = load_onnx_operator(model, blob)
    torch.manual_seed(1)
    for shape in ((1, 3, 50, 70), (3, 3, 96, 128), (1, 3, 8, 9)):
        low = torch.rand(shape) * torch.linspace(0.02, 0.6, shape[-1])
        with torch.inference_mode():
            for name, a, b in zip(("offset", "gain", "x_half", "level"), op(low), model.operator_grid(low)):
                assert a.shape == b.shape, name
                assert float((a - b).abs().max()) < 1e-4 * (1 + float(b.abs().max())), (name, shape)


@pytest.mark.slow
def test_the_cpu_engine_runs_the_export_and_writes_what_torch_writes(exported, tmp_path) -> None:
    model, blob = exported
    path = save_checkpoint(tmp_path / "student.pt", model, {"name": "test"}, onnx_operator=blob)
    outputs = {}
    for runtime in ("onnxruntime", "torch"):
        loaded, _ = load_checkpoint(path)
        assert loaded.onnx_operator == blob
        engine = Engine(loaded, device="cpu", cpu_runtime=runtime)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # a usable export loads without a warning
            outputs[runtime] = [engine.enhance([f])[0] for f in _frames(4)]   # the temporal filter runs too
        assert engine.network_runtime == runtime
    for a, b in zip(outputs["onnxruntime"], outputs["torch"]):
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


@pytest.mark.slow
def test_an_export_of_other_weights_or_settings_is_refused_and_torch_runs(exported, tmp_path) -> None:
    model, blob = exported
    other = _student(seed=7)                                  # same network, other weights
    changed = create_model("realtime", width=4, depth=1, default_proc_size=64, **{**SHIPPED_STEPS, "lift_limit": 1.0})
    changed.load_state_dict(model.state_dict())               # same weights, another setting
    for stale in (other, changed):
        path = save_checkpoint(tmp_path / "stale.pt", stale.eval(), {}, onnx_operator=blob)
        loaded, _ = load_checkpoint(path)
        engine = Engine(loaded, device="cpu")
        with pytest.warns(UserWarning, match="does not match the model"):
            out = engine.enhance(_frames(1))[0]
        assert engine.network_runtime == "torch"
        loaded.reset_state()
        assert np.array_equal(out, Engine(loaded, device="cpu", cpu_runtime="torch").enhance(_frames(1))[0])


def test_a_corrupt_export_is_refused_with_one_warning_and_torch_runs(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "corrupt.pt", _student(), {}, onnx_operator=b"not an onnx model")
    loaded, _ = load_checkpoint(path)
    engine = Engine(loaded, device="cpu")
    with pytest.warns(UserWarning, match="unreadable ONNX export") as record:
        engine.enhance(_frames(1))
    assert len(record) == 1 and engine.network_runtime == "torch"


def test_a_checkpoint_without_an_export_runs_torch_silently(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "plain.pt", _student(), {})
    loaded, _ = load_checkpoint(path)
    assert loaded.onnx_operator is None
    engine = Engine(loaded, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.enhance(_frames(1))
    assert engine.network_runtime == "torch"


def test_a_malformed_export_field_is_a_model_error(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "bad.pt", _student(), {})
    payload = torch.load(path, weights_only=True)
    payload["onnx_operator"] = torch.zeros(3, 3)               # not a byte string
    torch.save(payload, path)
    with pytest.raises(ModelError, match="onnx_operator"):
        load_checkpoint(path)


def test_the_cpu_runtime_option_is_checked() -> None:
    with pytest.raises(ValueError, match="cpu_runtime"):
        Engine(_student(), device="cpu", cpu_runtime="tensorrt")


def test_the_probe_uses_every_kind_of_area() -> None:
    low = probe_input()
    assert low.shape == (2, 3, 37, 53) and 0 <= float(low.min()) and float(low.max()) <= 1
    night = low[1]
    assert float(night[:, :8].max()) < 0.02               # black sky
    assert float(night[:, 20:30, 35:50].mean()) > 0.5     # lit window: lit_hue, lit_keep, highlight guard
    assert float(low[0].mean()) < 0.03                    # a dark frame


@pytest.mark.slow
def test_an_onnxruntime_failure_mid_run_falls_back_to_torch_with_the_same_frames(exported, tmp_path) -> None:
    model, blob = exported
    path = save_checkpoint(tmp_path / "student.pt", model, {}, onnx_operator=blob)
    loaded, _ = load_checkpoint(path)
    engine = Engine(loaded, device="cpu")
    frames = _frames(3)
    first = engine.enhance(frames[:1])[0]
    assert engine.network_runtime == "onnxruntime"
    backend = engine._backend

    def broken(low):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions")
    backend._onnx = broken
    with pytest.warns(UserWarning, match="onnxruntime failed") as record:
        rest = engine.enhance(frames[1:2]) + engine.enhance(frames[2:])
    assert len(record) == 1 and engine.network_runtime == "torch"
    loaded.reset_state()
    reference = Engine(loaded, device="cpu", cpu_runtime="torch")
    expected = [reference.enhance([f])[0] for f in frames]
    for a, b in zip([first] + rest, expected):          # the temporal state ran on without a gap
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_without_onnxruntime_the_engine_says_so_once_and_runs_torch(tmp_path, monkeypatch) -> None:
    import lowlight_rt.inference.cpu as cpu

    path = save_checkpoint(tmp_path / "student.pt", _student(), {}, onnx_operator=b"an export")
    loaded, _ = load_checkpoint(path)
    monkeypatch.setattr(cpu, "onnxruntime_available", lambda: False)
    engine = Engine(loaded, device="cpu")
    with pytest.warns(UserWarning, match="onnxruntime is not installed") as record:
        engine.enhance(_frames(2)[:1])
        engine.enhance(_frames(2)[1:])
    assert len(record) == 1 and engine.network_runtime == "torch"
