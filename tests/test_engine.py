"""Engine (CPU path, CUDA path when a GPU exists) and the inference worker thread."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch

from lowlight_rt.inference import Engine, InferenceWorker, THREAD_NAME, apply_operator_numpy
from lowlight_rt.inference.cuda import compare_outputs
from lowlight_rt.errors import DeviceError
from lowlight_rt.frames import Frame
from lowlight_rt.models import EnhancementModel, create_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class GammaModel(EnhancementModel):
    """A non-operator model for the generic ``enhance`` path: ``x ** 0.5``."""

    default_proc_size = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, 1).sqrt()


class FailingModel(GammaModel):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom in the model")


def _image(h: int, w: int, seed: int = 0, level: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.3, 1.0, w, dtype=np.float32)[None, :, None]
    img = ramp * level + rng.normal(0, 3, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _frames(n: int, h: int = 41, w: int = 67, **kw) -> list[Frame]:
    return [Frame(image=_image(h, w, seed=i, **kw), index=i) for i in range(n)]


def _tiny_rt() -> EnhancementModel:
    torch.manual_seed(0)
    return create_model("realtime", width=4, depth=1).eval()


def _cpu(model: EnhancementModel, **kw) -> Engine:
    return Engine(model, device="cpu", threads=1, **kw)


# -- size, range, processing sizes ---------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["classical", "realtime", "gamma"])
@pytest.mark.parametrize("proc_size", [None, 0, 16, 24, 1000])
def test_output_size_and_range(model_name, proc_size):
    model = GammaModel() if model_name == "gamma" else (_tiny_rt() if model_name == "realtime" else create_model("classical"))
    engine = _cpu(model, proc_size=proc_size)
    frames = _frames(2, 41, 67)
    out = engine.enhance(frames)
    assert len(out) == 2
    for f, o in zip(frames, out):
        assert o.shape == f.image.shape and o.dtype == np.uint8 and o.flags.c_contiguous


def test_proc_shape_follows_settings():
    engine = _cpu(create_model("classical"))
    assert engine.proc_shape(1280, 720) == (344, 192)  # model default short side 192
    assert engine.proc_size == 192 and engine.requested_proc_size is None and engine.size_multiple == 8
    engine.set_proc_size(360)
    assert engine.proc_shape(1280, 720) == (640, 360)
    engine.set_proc_size(0)
    assert engine.proc_size == 0 and engine.proc_shape(1280, 720) == (1280, 720)  # 0 = full resolution
    engine.set_proc_size(None)
    assert engine.proc_shape(1280, 720) == (344, 192)
    with pytest.raises(ValueError):
        engine.set_proc_size(-5)


def test_classical_engine_brightens():
    out = _cpu(create_model("classical")).enhance(_frames(1, level=30))
    assert out[0].mean() > 2 * _frames(1, level=30)[0].image.mean()


# -- equivalence with the model's own torch path ----------------------------------------------------
def _torch_reference(model: EnhancementModel, image: np.ndarray, low: np.ndarray) -> np.ndarray:
    full = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    lo = torch.from_numpy(low).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = model.enhance(full, lo)
    return (y[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("proc_size,gain_channels", [(16, 1), (32, 1), (24, 3)])
def test_operator_path_matches_model_enhance(proc_size, gain_channels):
    torch.manual_seed(0)
    model = create_model("realtime", width=4, depth=1, gain_channels=gain_channels).eval()
    engine = _cpu(model, proc_size=proc_size)
    frame = _frames(1, 45, 71)[0]
    pw, ph = engine.proc_shape(frame.width, frame.height)
    low = cv2.resize(frame.image, (pw, ph), interpolation=cv2.INTER_AREA)
    ref = _torch_reference(model, frame.image, low)
    out = engine.enhance([frame])[0]
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_generic_path_matches_model():
    engine = _cpu(GammaModel())
    frame = _frames(1)[0]
    expected = (np.sqrt(frame.image / 255.0) * 255 + 0.5).astype(np.uint8)
    assert np.abs(engine.enhance([frame])[0].astype(int) - expected).max() <= 1


def test_apply_operator_numpy_broadcasts_single_gain():
    img = _image(10, 12)
    offset = np.full((5, 6, 3), 10.0, np.float32)
    gain = np.full((5, 6, 1), 2.0, np.float32)
    out = apply_operator_numpy(img, offset, gain)
    np.testing.assert_array_equal(out, np.clip(img.astype(np.float32) * 2 + 10, 0, 255).round().astype(np.uint8))


# -- frames with / without / with a wrong proc ------------------------------------------------------
def test_proc_given_missing_or_wrong_size_agree():
    model = _tiny_rt()
    engine = _cpu(model, proc_size=16)
    image = _image(41, 67)
    pw, ph = engine.proc_shape(67, 41)
    good = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA)
    wrong = cv2.resize(image, (pw + 8, ph + 8), interpolation=cv2.INTER_AREA)
    a = engine.enhance([Frame(image=image, index=0, proc=good)])[0]
    b = engine.enhance([Frame(image=image, index=0, proc=None)])[0]
    c = engine.enhance([Frame(image=image, index=0, proc=wrong)])[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# -- strength --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", ["classical", "gamma"])
def test_strength_zero_returns_input_and_blends(model_name):
    model = create_model("classical") if model_name == "classical" else GammaModel()
    engine = _cpu(model, strength=0.0)
    frames = _frames(2)
    for f, o in zip(frames, engine.enhance(frames)):
        np.testing.assert_array_equal(o, f.image)
    engine.strength = 1.0
    full = engine.enhance(frames)[0].astype(int)
    engine.strength = 0.5
    if hasattr(model, "reset_state"):
        model.reset_state()
    half = engine.enhance(frames)[0].astype(int)
    expected = frames[0].image.astype(int) + 0.5 * (full - frames[0].image.astype(int))
    assert np.abs(half - expected).max() <= 2
    engine.strength = 7.0
    assert engine.strength == 1.0
    engine.strength = -1
    assert engine.strength == 0.0


# -- batches ------------------------------------------------------------------------------------------
def test_batch_of_mixed_sizes_keeps_order_and_matches_singles():
    engine = _cpu(_tiny_rt(), proc_size=16)
    frames = _frames(3, 41, 67) + _frames(2, 30, 20) + _frames(1, 41, 67)
    for i, f in enumerate(frames):
        f.index = i
    batched = engine.enhance(frames)
    singles = [engine.enhance([f])[0] for f in frames]
    assert [o.shape for o in batched] == [f.image.shape for f in frames]
    for a, b in zip(batched, singles):
        np.testing.assert_array_equal(a, b)
    assert engine.enhance([]) == []


def test_rejects_non_rgb_uint8_frames():
    engine = _cpu(GammaModel())
    with pytest.raises(ValueError):
        engine.enhance([Frame(image=np.zeros((8, 8), np.uint8), index=0)])
    with pytest.raises(ValueError):
        engine.enhance([Frame(image=np.zeros((8, 8, 3), np.float32), index=0)])


# -- model / device switching ---------------------------------------------------------------------
def test_set_model_swaps_before_next_batch():
    engine = _cpu(GammaModel())
    frame = _frames(1)[0]
    gamma_out = engine.enhance([frame])[0]
    engine.set_model(create_model("classical"))
    assert engine.proc_shape(640, 360) == (344, 192)
    classical_out = engine.enhance([frame])[0]
    assert not np.array_equal(gamma_out, classical_out)
    assert isinstance(engine.model, EnhancementModel)


def test_device_errors():
    with pytest.raises(DeviceError):
        Engine(GammaModel(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            Engine(GammaModel(), device="cuda")
        engine = _cpu(GammaModel())
        with pytest.raises(DeviceError):
            engine.set_device("cuda")
        assert Engine(GammaModel(), device="auto").device_type == "cpu"
    engine = _cpu(GammaModel())
    assert engine.device_name == "cpu" and engine.precision == "fp32"


def test_setters_are_thread_safe_during_enhance():
    engine = _cpu(create_model("classical"))
    frames = _frames(2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def fiddle() -> None:
        try:
            i = 0
            while not stop.is_set():
                engine.strength = (i % 10) / 9
                engine.set_proc_size([None, 16, 0, 32][i % 4])
                i += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=fiddle)
    t.start()
    try:
        for _ in range(20):
            out = engine.enhance(frames)
            assert [o.shape for o in out] == [f.image.shape for f in frames]
    finally:
        stop.set()
        t.join()
    assert not errors


# -- worker thread -----------------------------------------------------------------------------------
class ListSource:
    """Minimal source: ``read(timeout)`` hands out frames, ``None`` at the end, optional error/delay."""

    def __init__(self, frames: list[Frame], error_after: int | None = None, delay: float = 0.0) -> None:
        self.frames = list(frames)
        self.error_after = error_after
        self.delay = delay
        self.pos = 0

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.error_after is not None and self.pos >= self.error_after:
            raise OSError("source broke")
        if self.delay:
            time.sleep(self.delay)
        if self.pos >= len(self.frames):
            return None
        f = self.frames[self.pos]
        f.capture_time = time.perf_counter()
        self.pos += 1
        return f


def _no_worker_threads() -> bool:
    return not any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("batch_size", [1, 3])
def test_worker_delivers_every_frame_in_order(batch_size):
    frames = _frames(7, 24, 32)
    worker = InferenceWorker(ListSource(frames), _cpu(create_model("classical")), batch_size=batch_size,
                             out_queue_size=2)
    with worker:
        got = list(worker)
    assert [f.index for f, _ in got] == list(range(7))
    assert all(e.shape == f.image.shape for f, e in got)
    assert worker.get() is None  # stays ended
    snap = worker.stats.snapshot()
    assert snap["frames"] == 7 and snap["infer"]["ms_per_frame"] > 0 and snap["fps"] > 0
    assert snap["infer_seconds"] > 0 and snap["dropped"] == 0
    assert 1 <= snap["batches"] <= 7
    assert _no_worker_threads()


def test_worker_propagates_source_error_after_good_frames():
    frames = _frames(4, 16, 16)
    worker = InferenceWorker(ListSource(frames, error_after=2), _cpu(GammaModel())).start()
    got = []
    with pytest.raises(OSError, match="source broke"):
        while True:
            item = worker.get(timeout=5)
            if item is None:
                break
            got.append(item)
    assert len(got) == 2
    worker.stop()
    assert _no_worker_threads()


def test_worker_propagates_engine_error():
    worker = InferenceWorker(ListSource(_frames(2, 16, 16)), _cpu(FailingModel())).start()
    with pytest.raises(RuntimeError, match="boom"):
        list(worker)
    worker.stop()
    assert isinstance(worker.error, RuntimeError)


def test_worker_stop_mid_stream_with_full_queue():
    frames = _frames(50, 16, 16)
    source = ListSource(frames)
    worker = InferenceWorker(source, _cpu(GammaModel()), out_queue_size=1).start()
    first = worker.get(timeout=5)
    assert first is not None and first[0].index == 0
    # wait until the worker is blocked: frame 1 fills the queue, frame 2 waits to be put (finishing
    # thread), frame 3 waits to be finished, frame 4 has been through the network and waits for room
    deadline = time.monotonic() + 5
    while source.pos < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert source.pos == 5, "the worker should be blocked on the full queue"
    t = time.perf_counter()
    worker.stop()
    assert time.perf_counter() - t < 5
    assert not worker.running and _no_worker_threads()
    # after stop the consumer gets what was already queued (frame 1), then the end (None) instead of
    # blocking forever, and None again on every later call; nothing is read after the stop
    item = worker.get(timeout=1)
    assert item is not None and item[0].index == 1
    assert worker.get(timeout=1) is None
    assert worker.get(timeout=1) is None
    assert source.pos == 5


def test_worker_set_model_mid_run():
    frames = _frames(12, 24, 32)
    engine = _cpu(GammaModel())
    worker = InferenceWorker(ListSource(frames, delay=0.002), engine, out_queue_size=1).start()
    outputs = []
    for i, (frame, enhanced) in enumerate(worker):
        outputs.append((frame, enhanced))
        if i == 3:
            engine.set_model(create_model("classical"))
    worker.stop()
    assert len(outputs) == 12
    gamma = [(np.sqrt(f.image / 255.0) * 255 + 0.5).astype(np.uint8) for f, _ in outputs]
    is_gamma = [np.abs(e.astype(int) - g).max() <= 1 for (_, e), g in zip(outputs, gamma)]
    assert is_gamma[0] and not is_gamma[-1]
    assert is_gamma == sorted(is_gamma, reverse=True)  # one switch, never back


def test_worker_get_timeout():
    class Slow(ListSource):
        def read(self, timeout=None):
            time.sleep(min(timeout or 0.05, 0.05))
            raise TimeoutError

    worker = InferenceWorker(Slow([]), _cpu(GammaModel())).start()
    with pytest.raises(TimeoutError):
        worker.get(timeout=0.1)
    worker.stop()
    assert _no_worker_threads()


# -- FP16 check (logic on CPU; the real path on CUDA) -----------------------------------------------
def test_compare_outputs_flags_nan_black_and_drift():
    ref = torch.full((1, 3, 8, 8), 0.5)
    assert compare_outputs(ref + 0.001, ref) is None
    bad = ref.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert "NaN" in compare_outputs(bad, ref)
    assert "black" in compare_outputs(torch.zeros_like(ref), ref)
    assert "differs" in compare_outputs(ref + 0.2, ref)


@needs_cuda
@pytest.mark.parametrize("model_name", ["classical", "realtime", "gamma"])
def test_cuda_fp16_matches_cpu(model_name):
    def make():
        return GammaModel() if model_name == "gamma" else (_tiny_rt() if model_name == "realtime" else create_model("classical"))

    frames = _frames(3, 72, 128)
    cpu_out = _cpu(make(), proc_size=32).enhance(frames)
    engine = Engine(make(), device="cuda", fp16=True, proc_size=32)
    gpu_out = engine.enhance(frames)
    assert engine.precision in ("fp16", "fp32")
    for a, b in zip(cpu_out, gpu_out):
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0


@needs_cuda
def test_cuda_stream_double_buffering_in_order():
    engine = Engine(_tiny_rt(), device="cuda", fp16=True, proc_size=16)
    frames = _frames(6, 48, 64)
    pendings = [engine.submit([f]) for f in frames[:2]]  # two in flight (both slots)
    outs = [p.result()[0] for p in pendings]
    outs += [engine.submit([f]).result()[0] for f in frames[2:]]
    ref = _cpu(_tiny_rt(), proc_size=16).enhance(frames)
    for a, b in zip(outs, ref):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0
    engine.strength = 0.0
    np.testing.assert_array_equal(engine.enhance(frames[:1])[0], frames[0].image)
    engine.close()


@needs_cuda
def test_cuda_graphs_and_worker():
    engine = Engine(_tiny_rt(), device="cuda", fp16=True, proc_size=16, cuda_graphs=True)
    frames = _frames(8, 48, 64)
    worker = InferenceWorker(ListSource(frames), engine, batch_size=2)
    with worker:
        got = list(worker)
    assert [f.index for f, _ in got] == list(range(8))
    ref = _cpu(_tiny_rt(), proc_size=16).enhance(frames)
    for (_, a), b in zip(got, ref):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3.0


# -- the network on the next batch while the operator is applied to this one -------------------------
def test_cpu_submit_runs_the_network_and_leaves_the_application_to_result(monkeypatch):
    from lowlight_rt.inference import cpu

    applied = []
    real = cpu.apply_operator_numpy
    monkeypatch.setattr(cpu, "apply_operator_numpy", lambda *a, **k: applied.append(1) or real(*a, **k))
    engine = _cpu(_tiny_rt(), denoise=False)   # compared with the backend alone below
    frames = _frames(3, 24, 32)
    pending = engine.submit(frames)
    assert not applied   # the network ran (temporal state moved on); the application waits for result()
    out = pending.result()
    assert len(applied) == 3
    engine.model.reset_state()
    lows = [engine._low(f, *engine.proc_shape(32, 24)) for f in frames]
    same = cpu.CpuBackend(engine.model, 1, False).run([f.image for f in frames], None if lows[0] is None else lows, 1.0)
    assert all(np.array_equal(a, b) for a, b in zip(out, same))   # the same as in one step


def test_worker_applies_on_its_finishing_thread_and_ends_it(monkeypatch):
    from lowlight_rt.inference import cpu
    from lowlight_rt.inference.worker import FINISH_THREAD_NAME

    where = []
    real = cpu.apply_operator_numpy
    monkeypatch.setattr(cpu, "apply_operator_numpy",
                        lambda *a, **k: where.append(threading.current_thread().name) or real(*a, **k))
    engine = _cpu(_tiny_rt())
    with InferenceWorker(ListSource(_frames(5, 24, 32)), engine) as worker:
        assert len(list(worker)) == 5
    assert len(where) == 5 and all(name.startswith(FINISH_THREAD_NAME) for name in where)
    assert not any(t.name.startswith(FINISH_THREAD_NAME) for t in threading.enumerate())


def test_worker_error_in_the_application_reaches_the_consumer_without_a_gap(monkeypatch):
    from lowlight_rt.inference import cpu

    calls = []
    real = cpu.apply_operator_numpy

    def breaks_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room for the output")
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu, "apply_operator_numpy", breaks_on_the_third)
    worker = InferenceWorker(ListSource(_frames(6, 16, 16)), _cpu(_tiny_rt())).start()
    got = []
    with pytest.raises(MemoryError, match="no room"):
        while (item := worker.get(timeout=10)) is not None:
            got.append(item)
    assert [f.index for f, _ in got] == [0, 1]   # the frames before it, in order
    worker.stop()
    assert _no_worker_threads()


class GatedSource(ListSource):
    """Hands out frame 0, then waits for ``gate`` before frame 1 (a camera whose next frame is not there yet)."""

    def __init__(self, frames: list[Frame]) -> None:
        super().__init__(frames)
        self.gate = threading.Event()

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.pos == 1 and not self.gate.wait(timeout):
            raise TimeoutError
        return super().read(timeout)


def test_worker_hands_each_frame_on_without_waiting_for_the_next():
    """The network of frame N+1 may overlap the application of frame N, but frame N never waits for N+1 to
    arrive: a live source gets no extra latency."""
    source = GatedSource(_frames(3, 24, 32))
    engine = _cpu(_tiny_rt())
    with InferenceWorker(source, engine) as worker:
        first = worker.get(timeout=10)   # frame 1 is held back by the source
        source.gate.set()
        rest = list(worker)
    assert [f.index for f, _ in [first, *rest]] == [0, 1, 2]


def test_worker_stop_mid_stream_while_finishing():
    frames = _frames(40, 24, 32)
    engine = _cpu(_tiny_rt())
    worker = InferenceWorker(ListSource(frames, delay=0.001), engine, out_queue_size=1).start()
    assert worker.get(timeout=10)[0].index == 0
    worker.stop()
    assert _no_worker_threads() and not worker.running
    engine.close()
