"""The CUDA backend's logic on CPU, through a fake device layer (no GPU needed).

``lowlight_rt.inference.cuda`` sees a stand-in ``torch`` whose ``cuda`` namespace has logging streams,
events, a graph capture that can be made to fail, and whose ``empty(pin_memory=True)`` hands out
ordinary CPU tensors while counting them. The arithmetic runs for real on CPU (FP16 included), so
the outputs are compared with the CPU backend's, and the log shows the order of the synchronisation
calls. What this cannot show (true asynchrony, real pinned memory, kernel speed) is for the tests
marked ``cuda`` in test_engine.py and ``lowlight-rt bench`` on a GPU.
"""

from __future__ import annotations

import contextlib
from collections import Counter
import types
import warnings

import numpy as np
import pytest
import torch

from lowlight_rt.inference import cuda as cuda_mod
from lowlight_rt.inference.cpu import CpuBackend
from lowlight_rt.models import create_model


class FakeEvent:
    count = 0

    def __init__(self, log: list) -> None:
        FakeEvent.count += 1
        self.name, self.log = f"event{FakeEvent.count}", log

    def record(self, stream=None) -> None:
        self.log.append(("record", self.name, stream.name))

    def synchronize(self) -> None:
        self.log.append(("sync", self.name))


class FakeStream:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def wait_event(self, event: FakeEvent) -> None:
        self.log.append(("wait", self.name, event.name))

    def synchronize(self) -> None:
        self.log.append(("sync-stream", self.name))


class FakeDevice:
    """The fake ``torch`` seen by engine/cuda.py, and what it recorded."""

    def __init__(self, fail_capture: bool = False) -> None:
        self.log: list[tuple] = []
        self.pinned: list[tuple] = []       # shapes of pinned allocations, in order
        self.captures = 0
        self.fail_capture = fail_capture
        streams = iter(["compute", "copy"])
        fake = self

        @contextlib.contextmanager
        def stream(s):
            fake.log.append(("enter", s.name))
            yield
            fake.log.append(("exit", s.name))

        @contextlib.contextmanager
        def graph(g, stream=None, capture_error_mode=None):
            fake.captures += 1
            fake.log.append(("capture", fake.captures))
            if fake.fail_capture:
                raise RuntimeError("operation not permitted when stream is capturing")
            yield

        class CUDAGraph:
            def replay(self) -> None:
                fake.log.append(("replay",))

        self.cuda = types.SimpleNamespace(
            set_device=lambda device: None,
            Stream=lambda device: FakeStream(next(streams), fake.log),
            Event=lambda: FakeEvent(fake.log),
            stream=stream, graph=graph, CUDAGraph=CUDAGraph,
            get_device_name=lambda device: "Fake GPU",
        )

    def empty(self, *shape, pin_memory: bool = False, **kwargs):
        t = torch.empty(*shape, **kwargs)
        if pin_memory:
            self.pinned.append(tuple(t.shape))
        return t

    def __getattr__(self, name):  # everything else is the real torch
        return getattr(torch, name)


@pytest.fixture
def fake(monkeypatch) -> FakeDevice:
    dev = FakeDevice()
    monkeypatch.setattr(cuda_mod, "torch", dev)
    real_slot = cuda_mod._Slot
    # the slot's two events are made by the fake device (the dataclass bound torch.cuda.Event at import)
    monkeypatch.setattr(cuda_mod, "_Slot", lambda **kw: real_slot(uploaded=dev.cuda.Event(), done=dev.cuda.Event(), **kw))
    return dev


def _backend(model, **kw) -> cuda_mod.CudaBackend:
    return cuda_mod.CudaBackend(model, torch.device("cpu"), **kw)


def _frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    images = [(rng.random((h, w, 3)) * 60 + 10 * i).astype(np.uint8) for i in range(n)]
    lows = [img[::2, ::2].copy() for img in images]
    return images, lows


def _tiny_realtime():
    torch.manual_seed(0)
    return create_model("realtime", width=8, depth=1)


def _tiny_realtime_capped():
    torch.manual_seed(0)
    return create_model("realtime", width=8, depth=1, out_cap=0.5)


def _zero_dce():
    torch.manual_seed(0)
    return create_model("zero_dce")


def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float]:
    d = [np.abs(x.astype(np.int16) - y.astype(np.int16)) for x, y in zip(a, b)]
    return max(float(x.max()) for x in d), float(np.mean([x.mean() for x in d]))


# -- outputs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,fp16", [(_tiny_realtime, False), (_tiny_realtime, True), (_tiny_realtime_capped, False),
                                       (_tiny_realtime_capped, True), (_zero_dce, False), (_zero_dce, True)],
                         ids=["operator-fp32", "operator-fp16", "operator-cap-fp32", "operator-cap-fp16",
                              "direct-fp32", "direct-fp16"])
def test_batches_match_the_cpu_backend(fake, make, fp16, one_thread):
    """Batches of 3 and 1, strength 1 and 0.4, with processing-size inputs: the same pictures as the CPU
    backend (operator models: the offset / gain applied at full size; others: the output blended)."""
    gpu, cpu = _backend(make(), fp16=fp16), CpuBackend(make(), threads=1, compile=False)
    assert gpu.precision == ("fp16" if fp16 else "fp32") and gpu.device_name.endswith("(Fake GPU)")
    for n, strength, seed in ((3, 1.0, 0), (1, 0.4, 1), (3, 0.4, 2)):
        images, lows = _frames(n, seed=seed)
        out = gpu.submit(images, lows, strength)()
        ref = cpu.run(images, lows, strength)
        assert len(out) == n and all(o.shape == i.shape and o.dtype == np.uint8 for o, i in zip(out, images))
        worst, mean = _diff(out, ref)
        # the output cap: the CPU path rounds the input's luma and its 3x3 mean to a code (OpenCV), and the
        # slope (at least 9) multiplies that half code where the cap binds
        capped = make is _tiny_realtime_capped
        assert mean < (1.0 if fp16 or capped else 0.6) and worst <= (16 if capped else 8 if fp16 else 3), \
            (n, strength, worst, mean)
        assert _diff(out, images)[1] > 0.5                   # the network really changed the pictures
    assert gpu.precision == ("fp16" if fp16 else "fp32")  # the FP16 check passed: no fallback


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("make", [_tiny_realtime, _tiny_realtime_capped], ids=["operator", "operator-cap"])
def test_strength_zero_gives_the_input_back(fake, fp16, make, one_thread):
    """Exactly, also in FP16 (where x/255 is inexact: the uint8 conversion must round, not truncate)."""
    gpu = _backend(make(), fp16=fp16)
    images, lows = _frames(2)
    images[0][0, :8] = np.arange(248, 256, dtype=np.uint8)[:, None]   # FP16's coarse steps near 255
    out = gpu.submit(images, lows, 0.0)()
    assert all(np.array_equal(o, i) for o, i in zip(out, images))


# -- double buffering and pinned buffers ----------------------------------------------------------------
def test_two_slots_per_shape_alternate_and_their_pinned_buffers_are_reused(fake, one_thread):
    gpu = _backend(_zero_dce(), fp16=False)
    images, lows = _frames(2)
    fetches = [gpu.submit(images, lows, 1.0) for _ in range(2)]
    # two slots for the shape: pinned full + low input buffers each, plus one pinned output per batch
    full, low, out = (2, 48, 64, 3), (2, 24, 32, 3), (2, 48, 64, 3)
    assert Counter(fake.pinned) == Counter([full, low, full, low, out, out])
    slots = gpu._slots[(2, 48, 64, 24, 32)]
    assert len(slots) == 2 and [id(f.slot) for f in fetches] == [id(s) for s in slots]  # batch 2: the other slot
    for _ in range(4):
        fetches.append(gpu.submit(images, lows, 1.0))
    assert [id(f.slot) for f in fetches] == [id(s) for s in slots] * 3  # alternating, no new slots
    assert fake.pinned[6:] == [out] * 4                                 # no new input buffers
    assert [s.uses for s in slots] == [3, 3]
    ref = fetches[-1]()
    for f in fetches[-2:]:
        assert all(np.array_equal(a, b) for a, b in zip(f(), ref))
    # another shape gets its own pair of slots
    gpu.submit(*_frames(1, h=32, w=32), 1.0)()
    assert len(gpu._slots) == 2
    assert Counter(fake.pinned[10:]) == Counter([(1, 32, 32, 3), (1, 16, 16, 3)] * 2 + [(1, 32, 32, 3)])


def test_each_batch_waits_for_what_it_reuses(fake, one_thread):
    """Per batch: the previous upload from the slot's pinned buffers has finished before they are
    refilled; the upload (copy stream) waits until the slot's device buffers are free (its last
    compute is done); the compute stream waits for the upload; ``done`` is recorded after the
    download is queued; and the caller's fetch waits on ``done``."""
    gpu = _backend(_zero_dce(), fp16=False)
    images, lows = _frames(1)
    fake.log.clear()
    fetch = gpu.submit(images, lows, 1.0)
    slot = fetch.slot
    up, done = slot.uploaded.name, slot.done.name
    assert fake.log == [
        ("sync", up),                      # pinned inputs free again
        ("enter", "copy"), ("wait", "copy", done), ("record", up, "copy"), ("exit", "copy"),
        ("enter", "compute"), ("wait", "compute", up), ("record", done, "compute"), ("exit", "compute"),
    ]
    fake.log.clear()
    fetch()
    fetch()                                # the value is kept: one wait only
    assert fake.log == [("sync", done)]


def test_a_slot_whose_output_was_never_collected_is_collected_before_reuse(fake, one_thread):
    """The worker submits batch N+1 before collecting N; if the slot comes round again with its output
    still uncollected, submit collects it first, so that output is not lost or overwritten."""
    gpu = _backend(_zero_dce(), fp16=False)
    cpu = CpuBackend(_zero_dce(), threads=1, compile=False)
    batches = [_frames(1, seed=s) for s in range(3)]
    first = gpu.submit(*batches[0], 1.0)
    gpu.submit(*batches[1], 1.0)
    assert first.value is None
    fake.log.clear()
    gpu.submit(*batches[2], 1.0)       # the first batch's slot again
    assert first.value is not None and fake.log[0] == ("sync", first.slot.done.name)
    assert first.slot.outstanding is not first
    assert _diff(first(), cpu.run(*batches[0], 1.0))[0] <= 3


# -- the FP16 check ------------------------------------------------------------------------------------
@pytest.mark.parametrize("how,reason", [("nan", "NaN"), ("black", "black")])
def test_fp16_that_fails_the_check_falls_back_to_fp32(fake, how, reason, one_thread):
    from lowlight_rt.models.zero_dce import ZeroDCE

    class Bad(ZeroDCE):
        def enhance(self, full, low):
            out = super().enhance(full, low)
            if out.dtype == torch.float16:
                return out * float("nan") if how == "nan" else out * 0
            return out

    torch.manual_seed(0)
    gpu = _backend(Bad(), fp16=True)
    cpu = CpuBackend(_zero_dce(), threads=1, compile=False)
    images, lows = _frames(2)
    with pytest.warns(UserWarning, match=f"(?i){reason}.*falling back to FP32"):
        out = gpu.submit(images, lows, 1.0)()
    assert gpu.precision == "fp32"
    assert _diff(out, cpu.run(images, lows, 1.0))[0] <= 3          # the first batch is already FP32
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                # checked once, not per batch
        out = gpu.submit(images, lows, 1.0)()
    assert _diff(out, cpu.run(images, lows, 1.0))[0] <= 3


def test_compare_outputs_thresholds():
    base = torch.full((1, 3, 8, 8), 0.5)
    assert cuda_mod.compare_outputs(base + 0.005, base) is None
    assert "differs" in cuda_mod.compare_outputs(base + 0.02, base)            # mean above 0.01
    spike = base.clone()
    spike[0, 0, 0, 0] += 0.1
    assert "differs" in cuda_mod.compare_outputs(spike, base)                 # max above 0.08
    assert "black" in cuda_mod.compare_outputs(base * 0.2, base)
    assert "NaN" in cuda_mod.compare_outputs(base * float("inf"), base)


# -- CUDA graphs, compile, close -----------------------------------------------------------------------
def test_graph_capture_after_two_eager_uses_and_its_failure_path(fake, one_thread):
    fake.fail_capture = True
    gpu = _backend(_zero_dce(), fp16=False, cuda_graphs=True)
    cpu = CpuBackend(_zero_dce(), threads=1, compile=False)
    images, lows = _frames(1)
    ref = cpu.run(images, lows, 1.0)
    for i in range(4):                      # slot A: uses 1, 2; slot B: uses 1, 2 -> no capture yet
        assert _diff(gpu.submit(images, lows, 1.0)(), ref)[0] <= 3
    assert fake.captures == 0
    with pytest.warns(UserWarning, match="CUDA graph capture failed.*running without graphs"):
        out = gpu.submit(images, lows, 1.0)()       # slot A's third use
    assert fake.captures == 1 and _diff(out, ref)[0] <= 3
    for _ in range(3):
        assert _diff(gpu.submit(images, lows, 1.0)(), ref)[0] <= 3
    assert fake.captures == 1 and not any(e[0] == "replay" for e in fake.log)


def test_graphs_replay_once_captured(fake, one_thread):
    gpu = _backend(_zero_dce(), fp16=False, cuda_graphs=True)
    images, lows = _frames(1)
    for _ in range(6):
        gpu.submit(images, lows, 1.0)()
    assert fake.captures == 2                                # each slot, at its third use
    assert sum(e[0] == "replay" for e in fake.log) == 2      # used from then on instead of eager compute


def test_stateful_model_gets_no_graphs(fake):
    with pytest.warns(UserWarning, match="CUDA graphs disabled: the model keeps temporal state"):
        gpu = _backend(_tiny_realtime(), fp16=False, cuda_graphs=True)
    assert gpu._use_graphs is False


def test_compile_failure_runs_eager(fake, monkeypatch, one_thread):
    def broken_compile(*a, **k):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(UserWarning, match="torch.compile unavailable"):
        gpu = _backend(_zero_dce(), fp16=False, compile=True)
    images, lows = _frames(1)
    ref = CpuBackend(_zero_dce(), threads=1, compile=False).run(images, lows, 1.0)
    assert _diff(gpu.submit(images, lows, 1.0)(), ref)[0] <= 3


def test_close_waits_for_both_streams_and_drops_the_buffers(fake, one_thread):
    gpu = _backend(_zero_dce(), fp16=False)
    gpu.submit(*_frames(1), 1.0)()
    fake.log.clear()
    gpu.close()
    assert sorted(fake.log) == [("sync-stream", "compute"), ("sync-stream", "copy")]
    assert gpu._slots == {}
