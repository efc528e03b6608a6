"""Training loop, presets, resume, DDP and evaluation (CPU, tiny generated folders, no ../shared)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lowlight_rt.errors import InputError
from lowlight_rt.models import load_checkpoint
from training.engine.config import deep_merge, list_presets, load_preset, teacher_recipe
from training.engine.ema import ModelEMA
from training.engine.metrics import gt_mean_correct, psnr, quality, ssim
from training.engine.optim import Scheduler, build_optimizer
from training.engine.sampler import ResumableSampler

REPO = Path(__file__).resolve().parents[1]
PRESETS = ["compact_clarity", "li2022", "realtime", "realtime_contrast", "realtime_distill", "realtime_fast", "realtime_small",
           "realtime_small_fine", "unet_gan", "zero_dce"]


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth well-lit picture with edges: ``(h, w, 3)`` float in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0.3, 0.8, 3) + 0.2 * np.sin(6 * xx + rng.uniform(0, 6))[..., None]
    img = base * np.ones((h, w, 3))
    y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y0:y0 + h // 3, x0:x0 + w // 3] *= 0.4
    return np.clip(img, 0, 1)


def _write_pairs(root: Path, n: int = 6, size: tuple[int, int] = (56, 72), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    for i in range(n):
        hi = _scene(rng, *size)
        lo = np.clip(hi * 0.12 + rng.normal(0, 0.01, hi.shape), 0, 1)
        Image.fromarray((hi * 255).round().astype(np.uint8)).save(root / "high" / f"{i:03d}.png")
        Image.fromarray((lo * 255).round().astype(np.uint8)).save(root / "low" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_pairs(tmp_path_factory.mktemp("paired"))


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpaired")
    rng = np.random.default_rng(1)
    for i in range(6):
        lo = _scene(rng, 48, 64) * 0.15
        Image.fromarray((lo * 255).round().astype(np.uint8)).save(root / f"{i:03d}.png")
    return root


def _distill(args: list[str]) -> int:
    from training.distill import main

    return main(args + ["--device", "cpu", "--no-progress"])


def _check_checkpoint(path: Path, preset: str) -> dict:
    model, meta = load_checkpoint(path)
    x = torch.rand(1, 3, 37, 45) * 0.2
    with torch.no_grad():
        y = model(x)
        z = model.enhance(x, torch.nn.functional.interpolate(x, size=(20, 24), mode="area"))
    assert y.shape == x.shape and z.shape == x.shape
    assert torch.isfinite(y).all() and 0 <= float(y.min()) and float(y.max()) <= 1
    assert meta["preset"] == preset and meta["smoke"] is True
    assert meta["epoch"] >= 1 and meta["global_step"] >= 1
    return meta


# ----------------------------------------------------------------------------- presets and smoke runs
def test_bundled_presets_are_all_tested() -> None:
    assert sorted(list_presets()) == sorted(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_describes_itself(preset: str) -> None:
    cfg = load_preset(preset)
    for section in ("model", "loss", "optimizer", "scheduler", "train", "data", "description"):
        assert section in cfg, f"{preset} lacks {section}"
    text = (REPO / "training" / "configs" / f"{preset}.yaml").read_text()
    assert text.lstrip().startswith("#"), "presets start with a comment saying how to run them"
    smoke = load_preset(preset, smoke=True)
    assert smoke["smoke"] is True and cfg["smoke"] is False


def test_compact_clarity_preset_matches_the_thesis() -> None:
    cfg = load_preset("compact_clarity")
    w = {k: (v["weight"] if isinstance(v, dict) else v) for k, v in cfg["loss"].items()}
    assert (w["charbonnier"], w["fft"], w["perceptual"], w["ms_ssim"], w["gradient"], w["adversarial"],
            w["contrastive"]) == (0.55, 0.08, 0.08, 0.20, 0.15, 0.001, 0.01)
    assert cfg["optimizer"] == {"name": "adamw", "lr": 6.25e-6, "weight_decay": 1e-5}
    assert cfg["discriminator_optimizer"]["lr"] == 1.56e-6 and cfg["discriminator_optimizer"]["betas"] == [0.5, 0.999]
    assert (cfg["scheduler"]["name"], cfg["scheduler"]["patience"], cfg["scheduler"]["factor"]) == ("plateau", 7, 0.5)
    assert cfg["train"]["epochs"] == 250 and cfg["train"]["accumulation"] == 2
    assert [(s["epoch"], s["crop"]) for s in cfg["data"]["progressive"]] == [(1, 64), (41, 128), (81, 256)]
    assert set(cfg["teachers"]) == {"mirnet_v2", "zero_dce"}


def test_li2022_preset_matches_the_paper() -> None:
    cfg = load_preset("li2022")
    assert cfg["teachers"]["gradient_guided"]["config"] == {"blocks": 6, "channels": 96}
    assert cfg["model"]["config"] == {"blocks": 3, "channels": 48}
    assert cfg["loss"]["attention"] == 1.0 and cfg["loss"]["perceptual"]["weight"] == 0.1
    assert cfg["train"]["iterations"] == 50000 and cfg["train"]["distill_warmup_iters"] == 10000
    assert cfg["scheduler"] == {"name": "step", "interval": "iter", "step_size": 25000, "gamma": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_smoke_every_preset_gives_a_runtime_checkpoint(preset: str, paired: Path, unpaired: Path,
                                                       tmp_path: Path) -> None:
    data = unpaired if preset == "zero_dce" else paired
    out = tmp_path / "run"
    assert _distill(["--config", preset, "--data", str(data), "--out", str(out), "--smoke"]) == 0
    meta = _check_checkpoint(out / "best.pt", preset)
    if preset != "zero_dce":
        assert {"val_psnr", "val_ssim", "val_psnr_gtmean", "val_ssim_gtmean"} <= set(meta["val_metrics"])
        assert all(math.isfinite(v) for v in meta["val_metrics"].values())
    assert meta["train_data"] == str(data)
    assert [t["name"] for t in meta["teachers"]] == list(load_preset(preset, smoke=True).get("teachers") or {})
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert (out / "history.png").stat().st_size > 1000 and (out / "last.pt").is_file()
    assert any((out / "tb").iterdir())
    if preset == "unet_gan":     # teacher outputs cached once per real training image (realtime trains on ground truth)
        assert len(list((out / "teacher_cache").rglob("*.pt"))) >= 4


@pytest.mark.slow
def test_teacher_then_distill_with_trained_teacher(paired: Path, tmp_path: Path) -> None:
    from training.teacher import main as teacher_main

    t_out = tmp_path / "teacher"
    assert teacher_main(["--config", "li2022", "--data", str(paired), "--out", str(t_out), "--smoke",
                         "--device", "cpu", "--no-progress"]) == 0
    teacher, meta = load_checkpoint(t_out / "best.pt")
    assert teacher.arch_name == "gradient_guided" and meta["role"] == "teacher"
    s_out = tmp_path / "student"
    assert _distill(["--config", "li2022", "--data", str(paired), "--out", str(s_out), "--smoke",
                     "--teacher-weights", f"gradient_guided={t_out / 'best.pt'}"]) == 0
    meta = _check_checkpoint(s_out / "best.pt", "li2022")
    assert meta["teachers"][0]["trained"] is True and meta["teachers"][0]["weights"] == str(t_out / "best.pt")


def test_missing_teacher_weights_is_a_clear_error(paired: Path, tmp_path: Path, capsys) -> None:
    rc = _distill(["--config", "li2022", "--data", str(paired), "--out", str(tmp_path / "o")])
    assert rc == InputError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "teacher" in err[0] and "training.teacher" in err[0]
    assert err[0].startswith("python -m training.distill: error: ")     # which tool said it


def test_unknown_preset_is_a_clear_error(paired: Path, tmp_path: Path, capsys) -> None:
    assert _distill(["--config", "nope", "--data", str(paired), "--out", str(tmp_path)]) == InputError.exit_code
    assert "no preset 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_resume_after_interruption_ends_at_the_same_epoch(paired: Path, tmp_path: Path) -> None:
    from training.engine.loop import Trainer

    cfg = load_preset("li2022", smoke=True)
    out = tmp_path / "run"

    def interrupt(trainer: Trainer) -> None:
        if trainer.epoch == 1 and trainer.batch_in_epoch >= 1:   # part-way through epoch 2
            raise KeyboardInterrupt

    first = Trainer(cfg, data=paired, out=out, device="cpu", epochs=2, progress=False, callback=interrupt)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and state["batch_in_epoch"] >= 1 and state["epochs"] == 2
    # resume through the CLI: continues the same run to the same final epoch
    assert _distill(["--config", "li2022", "--data", str(paired), "--out", str(out), "--smoke", "--resume"]) == 0
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["epoch"] == 2 and state["batch_in_epoch"] == 0
    assert [int(r["epoch"]) for r in csv.DictReader(open(out / "history.csv"))] == [1, 2]
    _check_checkpoint(out / "best.pt", "li2022")
    # that the resumed run trains exactly like an uninterrupted one (LR schedule, RNG, data order,
    # weights step by step) is checked in test_training_resume_ddp.py on a smaller network


def test_resume_without_state_is_a_clear_error(paired: Path, tmp_path: Path, capsys) -> None:
    rc = _distill(["--config", "zero_dce", "--data", str(paired / "low"), "--out", str(tmp_path), "--smoke", "--resume"])
    assert rc == InputError.exit_code and "nothing to resume" in capsys.readouterr().err


# ----------------------------------------------------------------------------- DDP
# Two gloo processes, through the command line (torchrun's environment) and through the Trainer
# (sharding, gradient averaging): tests/test_training_resume_ddp.py, in forked processes (seconds,
# where a torchrun subprocess spent ~45 s importing torch twice).


# ----------------------------------------------------------------------------- evaluation
@pytest.mark.slow
def test_evaluate_writes_table_and_grid(paired: Path, tmp_path: Path) -> None:
    from training.evaluate import main as eval_main

    run = tmp_path / "run"
    assert _distill(["--config", "unet_gan", "--data", str(paired), "--out", str(run), "--smoke"]) == 0
    out = tmp_path / "eval"
    rc = eval_main(["--model", str(run / "best.pt"), "--teacher", str(run / "best.pt"), "--data", str(paired),
                    "--out", str(out), "--flops-size", "64x48", "--grid-images", "2"])
    assert rc == 0
    table = (out / "results.md").read_text()
    assert "PSNR GT-mean" in table and "GFLOPs @64x48" in table and table.count("| unet") >= 2
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[0] >= 2 * 56 and grid.shape[1] >= 4 * 72     # 2 rows: input | teacher | model | reference
    import json

    rows = json.loads((out / "results.json").read_text())
    assert rows[0]["images"] == 6 and rows[0]["gflops"] > 0 and rows[0]["params"] > 0
    assert math.isfinite(rows[0]["psnr"]) and math.isfinite(rows[0]["cpu_ms"])


# ----------------------------------------------------------------------------- engine units
def test_metrics() -> None:
    x = torch.rand(2, 3, 32, 32)
    assert float(psnr(x, x)[0]) > 90 and torch.allclose(ssim(x, x), torch.ones(2), atol=1e-4)
    assert abs(float(psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1))[0]) - 20.0) < 1e-3
    dark = x * 0.5
    assert torch.allclose(gt_mean_correct(dark, x).mean(), x.mean(), atol=1e-3)
    q = quality(dark, x)
    assert float(q["psnr_gtmean"].mean()) > float(q["psnr"].mean())


def test_schedulers() -> None:
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = build_optimizer(p, {"name": "adam", "lr": 1e-3})
    step = Scheduler(opt, {"name": "step", "interval": "iter", "step_size": 2, "gamma": 0.5}, total_iters=10, total_epochs=1)
    lrs = []
    for _ in range(5):
        lrs.append(step.lrs[0])
        step.step_iter()
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    opt = build_optimizer(p, {"name": "adamw", "lr": 1e-3})
    cos = Scheduler(opt, {"name": "cosine", "warmup_iters": 2, "min_lr": 0.0}, total_iters=12, total_epochs=1)
    seen = []
    for _ in range(12):
        seen.append(cos.lrs[0])
        cos.step_iter()
    assert seen[0] < seen[1] < seen[2] == pytest.approx(1e-3) and seen[-1] < 1e-4
    opt = build_optimizer(p, {"name": "radam", "lr": 1e-3})
    plat = Scheduler(opt, {"name": "plateau", "patience": 1, "factor": 0.5}, total_iters=10, total_epochs=10)
    for metric in (10.0, 10.0, 10.0):
        plat.step_epoch(metric)
    assert plat.lrs[0] == pytest.approx(5e-4)
    state = plat.state_dict()
    opt2 = build_optimizer(p, {"name": "radam", "lr": 1e-3})
    plat2 = Scheduler(opt2, {"name": "plateau", "patience": 1, "factor": 0.5}, total_iters=10, total_epochs=10)
    plat2.load_state_dict(state)
    assert plat2.lrs[0] == pytest.approx(5e-4)
    with pytest.raises(InputError):
        build_optimizer(p, {"name": "lion"})


def test_resumable_sampler_replays_the_rest_of_an_epoch() -> None:
    data = list(range(10))
    full = ResumableSampler(data, seed=3)
    full.set_epoch(4)
    part = ResumableSampler(data, seed=3)
    part.set_epoch(4, start=6)
    assert list(part) == list(full)[6:] and len(part) == 4
    a, b = ResumableSampler(data, num_replicas=2, rank=0), ResumableSampler(data, num_replicas=2, rank=1)
    a.set_epoch(0)
    b.set_epoch(0)
    assert sorted(list(a) + list(b)) == data


def test_ema_tracks_the_model() -> None:
    model = torch.nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(200):
        ema.update(model)
    assert torch.allclose(ema.module.weight, torch.ones(2, 2), atol=1e-3)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_config_merge_and_teacher_recipe() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    name, cfg = teacher_recipe(load_preset("unet_gan"))
    assert name == "unet" and cfg["model"]["arch"] == "unet" and cfg["teachers"] == {}
    assert set(cfg["loss"]) == {"l1", "ssim", "adversarial"} and cfg["optimizer"]["name"] == "radam"
    assert cfg["discriminator_optimizer"]["name"] == "rmsprop" and cfg["scheduler"]["name"] == "cosine"
    with pytest.raises(InputError):
        teacher_recipe(load_preset("unet_gan"), "mirnet_v2")


def test_collate_marks_rows_without_a_cached_teacher_output() -> None:
    from training.engine.loaders import collate

    a = {"input": torch.zeros(3, 4, 4), "target": torch.ones(3, 4, 4), "teacher": torch.full((3, 4, 4), 0.5)}
    b = {"input": torch.zeros(3, 4, 4), "target": torch.ones(3, 4, 4), "name": "x"}
    batch = collate([a, b])
    assert batch["teacher"].shape == (2, 3, 4, 4) and batch["teacher__mask"].tolist() == [True, False]
    assert "name" not in batch and "input__mask" not in batch
