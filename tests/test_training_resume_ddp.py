"""Resume and DDP train the same network an uninterrupted single run would (tiny model, CPU, seconds).

- Resume: a run interrupted part-way through an epoch and resumed from ``last.pt`` takes exactly the
  steps of the uninterrupted run (same learning rates, same augmentation draws, same weights).
- DDP: two gloo processes (``torch.multiprocessing``) see disjoint halves of every epoch, keep
  identical weights, and end where one process with the two ranks' batches combined ends (the
  gradient is the mean over ranks, not one rank's and not the sum).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from training.engine.logs import RunLogger


def _write_pairs(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` paired pictures (``low/`` dark + noisy, ``high/`` smooth with an edge)."""
    rng = np.random.default_rng(seed)
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for i in range(n):
        hi = rng.uniform(0.3, 0.8, 3) + 0.2 * np.sin(6 * xx + rng.uniform(0, 6))[..., None]
        hi = np.clip(hi * np.ones((h, w, 3)), 0, 1)
        hi[: h // 2, : w // 3] *= 0.4
        lo = np.clip(hi * 0.12 + rng.normal(0, 0.01, hi.shape), 0, 1)
        Image.fromarray((hi * 255).round().astype(np.uint8)).save(root / "high" / f"{i:03d}.png")
        Image.fromarray((lo * 255).round().astype(np.uint8)).save(root / "low" / f"{i:03d}.png")
    return root


def _cfg(*, crop: int, batch: int, epochs: int, augment: bool, optimizer: dict[str, Any],
         scheduler: dict[str, Any]) -> dict[str, Any]:
    """The smallest preset the trainer runs: the realtime student at width 8, Charbonnier to ground truth."""
    return {
        "name": "tiny", "seed": 0,
        "model": {"arch": "realtime", "config": {"width": 8, "depth": 1}},
        "teachers": {},
        "data": {"sources": [{"kind": "paired"}], "val_fraction": 0.0, "crop": crop, "batch": batch,
                 "workers": 0, "augment": {"flip": augment, "rotate": augment}},
        "loss": {"charbonnier": 1.0},
        "optimizer": optimizer, "scheduler": scheduler,
        "train": {"epochs": epochs, "ema_decay": 0.9, "amp": False, "tensorboard": False, "log_every": 1000},
    }


@pytest.fixture(autouse=True)
def _no_history_plot(monkeypatch):
    """history.png (matplotlib, seconds per epoch) plays no part in what these tests check."""
    monkeypatch.setattr(RunLogger, "plot", lambda self: None)


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= atol, f"{what}: weights differ by up to {worst:.3g}"


# ----------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def resume_pairs(tmp_path_factory) -> Path:
    return _write_pairs(tmp_path_factory.mktemp("resume_pairs"), n=6, size=(40, 48))


def test_resumed_run_trains_exactly_like_an_uninterrupted_one(resume_pairs, tmp_path, one_thread):
    """Interrupted after step 4 (the first batch of epoch 2 of 2, 3 steps an epoch) and resumed: steps
    5 and 6 see the same learning rate (cosine with warm-up: the scheduler's state matters), the same
    random crops / flips / rotations (global RNG state matters) and end on the same weights, EMA
    weights and optimiser moments as the run that was never interrupted."""
    from training.engine.loop import Trainer

    cfg = _cfg(crop=32, batch=2, epochs=2, augment=True, optimizer={"name": "adamw", "lr": 1e-2},
               scheduler={"name": "cosine", "warmup_iters": 2, "min_lr": 0.0})

    def recorder(steps: list):
        def callback(trainer) -> None:
            steps.append((trainer.global_step, trainer.scheduler.lrs[0], _weights(trainer)))
        return callback

    ref_steps: list = []
    ref = Trainer(cfg, data=resume_pairs, out=tmp_path / "ref", device="cpu", progress=False,
                  callback=recorder(ref_steps))
    ref.fit()
    assert [s[0] for s in ref_steps] == [1, 2, 3, 4, 5, 6]
    assert len({round(s[1], 9) for s in ref_steps[3:]}) == 3, "the LR must change step by step"

    def interrupt_after_4(trainer) -> None:
        if trainer.global_step == 4:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    first = Trainer(cfg, data=resume_pairs, out=out, device="cpu", progress=False, callback=interrupt_after_4)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    _assert_same(_weights(first), ref_steps[3][2], "before the interruption")

    resumed_steps: list = []
    resumed = Trainer(cfg, data=resume_pairs, out=out, device="cpu", progress=False, resume=True,
                      callback=recorder(resumed_steps))
    assert (resumed.epoch, resumed.batch_in_epoch, resumed.global_step) == (1, 1, 4)
    resumed.fit()
    assert [s[0] for s in resumed_steps] == [5, 6], "the resumed run redoes or skips steps"
    for (step, lr, w), (_, ref_lr, ref_w) in zip(resumed_steps, ref_steps[4:]):
        assert lr == pytest.approx(ref_lr, rel=1e-9, abs=1e-12), f"step {step}: LR {lr} vs {ref_lr} (scheduler state)"
        _assert_same(w, ref_w, f"after step {step} (RNG / data order / optimiser state)")
    _assert_same(resumed.ema.module.state_dict(), ref.ema.module.state_dict(), "EMA")
    for ga, gb in zip(resumed.optimizer.state_dict()["state"].values(), ref.optimizer.state_dict()["state"].values()):
        assert torch.allclose(ga["exp_avg_sq"], gb["exp_avg_sq"], rtol=1e-5, atol=1e-10)
    assert resumed.epoch == ref.epoch == 2


# ----------------------------------------------------------------------------- DDP
class _Recording(Dataset):
    """Delegates to ``dataset`` and remembers which indices this process loaded."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        self.seen.append(int(index))
        return self.dataset[index]


# 8 pictures of 32x32 cropped to 32 (the only crop), no flips: the data is the same whoever loads it,
# so one process with batch 4 sees exactly the union of the two ranks' batches of 2 at every step.
# SGD, not Adam: Adam's update hardly changes when the gradient is doubled (a sum instead of a mean).
_DDP_CFG = dict(crop=32, batch=2, epochs=2, augment=False, optimizer={"name": "sgd", "lr": 0.5},
                scheduler={"name": "none"})


def _ddp_rank(rank: int, world: int, data: str, out: str, init_file: str) -> None:
    """One process of the 2-process job."""
    import torch.distributed as dist

    from training.ddp import DistInfo
    from training.engine.loop import Trainer

    torch.set_num_threads(1)
    RunLogger.plot = lambda self: None  # this process only
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        info = DistInfo(rank=rank, world_size=world, local_rank=rank)
        steps: list[dict[str, torch.Tensor]] = []
        trainer = Trainer(_cfg(**_DDP_CFG), data=data, out=out, device="cpu", progress=False, dist=info,
                          callback=lambda t: steps.append(_weights(t)))
        seen_by_epoch: list[list[int]] = []
        recording = _Recording(trainer.train_set)
        trainer.train_set = recording
        original = trainer._train_epoch

        def train_epoch(epoch: int):
            recording.seen = []
            logs = original(epoch)
            seen_by_epoch.append(list(recording.seen))
            return logs

        trainer._train_epoch = train_epoch
        trainer.fit()
        with open(Path(out) / f"rank{rank}.pkl", "wb") as f:
            pickle.dump({"seen": seen_by_epoch, "steps": steps}, f)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_pairs(tmp_path_factory) -> Path:
    return _write_pairs(tmp_path_factory.mktemp("ddp_pairs"), n=8, size=(32, 32), seed=3)


def test_ddp_shards_the_data_and_averages_the_gradients(ddp_pairs, tmp_path, one_thread):
    import torch.multiprocessing as mp

    from training.engine.loop import Trainer

    out = tmp_path / "ddp"
    out.mkdir()
    # spawn, not fork: by now the test process has other threads (tqdm's monitor, servers of earlier
    # tests), and a fork can copy a lock one of them holds: a CI run hung here for 300 s. ~10 s slower.
    mp.start_processes(_ddp_rank, args=(2, str(ddp_pairs), str(out), str(tmp_path / "init")), nprocs=2,
                       join=True, start_method="spawn")
    ranks = [pickle.loads((out / f"rank{r}.pkl").read_bytes()) for r in range(2)]

    # every epoch: each rank loads half of the pictures, the two halves are disjoint and cover all 8
    for epoch in range(2):
        a, b = (sorted(r["seen"][epoch]) for r in ranks)
        assert len(a) == len(b) == 4, f"epoch {epoch + 1}: a rank loaded {len(a)} / {len(b)} pictures, not its half"
        assert not set(a) & set(b), f"epoch {epoch + 1}: both ranks trained on {sorted(set(a) & set(b))}"
        assert sorted(a + b) == list(range(8))
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1], "each epoch is reshuffled"

    # after every step both ranks hold the same weights (their gradients were combined)
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 4
    for i, (w0, w1) in enumerate(zip(ranks[0]["steps"], ranks[1]["steps"])):
        _assert_same(w0, w1, f"rank 0 vs rank 1 after step {i + 1}", atol=1e-6)

    # ... and they are the weights one process reaches on batches of 4 (the union of the ranks' batches):
    # the mean of the two ranks' gradients, not the sum and not one rank's own
    single: list[dict[str, torch.Tensor]] = []
    cfg = _cfg(**{**_DDP_CFG, "batch": 4})
    Trainer(cfg, data=ddp_pairs, out=tmp_path / "single", device="cpu", progress=False,
            callback=lambda t: single.append(_weights(t))).fit()
    assert len(single) == 4
    moved = max(float((single[-1][k] - single[0][k]).abs().max()) for k in single[0])
    assert moved > 1e-3, "the reference run must actually learn something"
    for i, (w, ref) in enumerate(zip(ranks[0]["steps"], single)):
        _assert_same(w, ref, f"DDP vs one process with the combined batch, step {i + 1}", atol=2e-5)


# ----------------------------------------------------------------------------- DDP through the command line
def _distill_rank(rank: int, world: int, port: int, argv: list[str], out: str) -> None:
    """One rank of ``torchrun --nproc_per_node 2 -m training.distill ...``: torchrun's environment,
    then the command's own ``main`` (which joins the group through ``init_distributed``)."""
    import logging
    import os

    from training.distill import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    training_log = logging.getLogger("training")
    training_log.addHandler(Keep(logging.INFO))
    training_log.setLevel(logging.INFO)  # what rank 0 / 1 decide to log, whatever the root logger says
    code = main(argv)
    with open(Path(out) / f"cli_rank{rank}.pkl", "wb") as f:
        pickle.dump({"code": code, "messages": messages}, f)


def test_distill_command_under_torchrun_environment(tmp_path, one_thread):
    """``torchrun --nproc_per_node 2 -m training.distill --smoke``, without torchrun's launcher: both
    ranks exit 0, only rank 0 logs the epochs and writes, and best.pt records the 2-process run."""
    import socket

    import torch.multiprocessing as mp

    from tests.test_training import _check_checkpoint

    data = _write_pairs(tmp_path / "data", n=6, size=(56, 72))
    out = tmp_path / "ddp"
    results = tmp_path / "results"
    results.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["--config", "realtime", "--data", str(data), "--out", str(out), "--smoke", "--device", "cpu",
            "--no-progress"]
    mp.start_processes(_distill_rank, args=(2, port, argv, str(results)), nprocs=2, join=True,
                       start_method="spawn")   # not fork: see test_ddp_shards_the_data_and_averages_the_gradients
    ranks = [pickle.loads((results / f"cli_rank{r}.pkl").read_bytes()) for r in range(2)]
    assert [r["code"] for r in ranks] == [0, 0]
    assert sum("epoch 1/1" in m for m in ranks[0]["messages"]) == 1
    assert not [m for m in ranks[1]["messages"] if "epoch" in m], "only rank 0 logs"
    meta = _check_checkpoint(out / "best.pt", "realtime")
    assert meta["world_size"] == 2
    assert (out / "last.pt").is_file() and (out / "history.csv").is_file()
