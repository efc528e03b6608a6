"""The shared training loop of ``training.distill`` (students) and ``training.teacher`` (teachers).

One :class:`Trainer` runs any preset: it trains the preset's ``model`` with the weighted loss terms
of ``loss`` (a :class:`~training.losses.HybridLoss`), against the ground truth and/or the outputs and
features of frozen ``teachers``, with an optional discriminator trained on the side. Per epoch it
validates the EMA weights (PSNR / SSIM), logs (CSV, TensorBoard, ``history.png``), exports the best
network as ``best.pt`` (runtime checkpoint format) and writes the resumable state ``last.pt``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from lowlight_rt.inference import resolve_device as runtime_resolve_device
from lowlight_rt.errors import InputError, OutputError
from lowlight_rt.models import save_checkpoint

from ..ddp import DistInfo, all_reduce_mean, barrier, broadcast_object, broadcast_parameters, wrap
from .config import resolve_path
from .ema import ModelEMA
from .logs import RunLogger
from .metrics import quality
from .networks import Teacher, Trainee, build_network, build_teachers, select
from .optim import Scheduler, build_optimizer
from .sampler import ResumableSampler
from .state import load_state, rng_state, save_state, seed_everything, set_rng_state

log = logging.getLogger("training")

#: batch keys that never come from a teacher
_BASE_KEYS = {"pred", "target", "input", "curves", "model", "student_feats"}


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """The runtime's :func:`lowlight_rt.inference.resolve_device`, except that a distributed run puts
    each process on its own GPU (``auto`` / ``cuda`` -> ``cuda:<local rank>``)."""
    plain = (name or "auto").strip().lower()
    if info.enabled and plain in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return runtime_resolve_device(plain)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Train ``cfg["model"]`` as the preset describes.

    Args:
        cfg: a loaded preset (:func:`~training.engine.config.load_preset`), for teachers already
            rewritten by :func:`~training.engine.config.teacher_recipe`.
        data: training folder (paired ``low/`` + ``high/`` or unpaired, as ``cfg["data"]`` says).
        val: held-out paired folder; default: a split of ``data`` (``data.val_fraction``).
        out: output folder (``best.pt``, ``last.pt``, ``history.csv``, ``history.png``, ``tb/``).
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        resume: continue from ``out/last.pt``.
        epochs: override the preset's epoch count.
        role: ``"student"`` or ``"teacher"`` (recorded in the checkpoint metadata).
        dist: this process's place in a torchrun job (default single process).
        progress: show tqdm bars (rank 0 only).
        callback: called as ``callback(trainer)`` after every optimiser step (tests use it to
            interrupt a run).
    """

    def __init__(self, cfg: dict[str, Any], *, data: str | os.PathLike, out: str | os.PathLike,
                 val: str | os.PathLike | None = None, device: str = "auto", resume: bool = False,
                 epochs: int | None = None, role: str = "student", dist: DistInfo | None = None,
                 progress: bool = True, callback: Callable[["Trainer"], None] | None = None,
                 vgg19: str | None = None) -> None:
        from .loaders import build_datasets

        self.cfg = cfg
        self.tcfg: dict[str, Any] = dict(cfg.get("train") or {})
        self.dist = dist or DistInfo()
        self.device = resolve_device(device, self.dist)
        self.cuda = self.device.type == "cuda"
        self.role = role
        self.data_dir, self.val_dir = str(data), (str(val) if val is not None else None)
        self.out = Path(out)
        self.progress = progress and self.dist.is_main
        self.callback = callback
        self.seed = int(cfg.get("seed", 0))
        if self.dist.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot create output folder {self.out} ({e.strerror})") from None
            if not os.access(self.out, os.W_OK):
                raise OutputError(f"output folder is not writable: {self.out}")
        seed_everything(self.seed)    # same initial weights on every rank
        # subnormal floats (e.g. ~19k in the official Zero-DCE weights) make CPU convolutions ~30x slower
        torch.set_flush_denormal(True)

        # networks
        self.model = build_network(cfg["model"]).to(self.device)
        if self.cuda and self.tcfg.get("checkpointing", False) and hasattr(self.model, "set_grad_checkpointing"):
            self.model.set_grad_checkpointing(True)
            log.info("activation checkpointing on")
        self.teachers: list[Teacher] = build_teachers(cfg.get("teachers"), smoke=bool(cfg.get("smoke")))
        for t in self.teachers:
            t.model.to(self.device)
        fcfg = cfg.get("features") or {}
        self.student_layers = fcfg.get("student_layers")

        # loss (+ discriminator)
        self.loss = self._build_loss(cfg.get("loss") or {}, vgg19).to(self.device)
        self.base_weights = self.loss.weights
        teacher_keys = {t.output_key for t in self.teachers} | {t.feats_key for t in self.teachers if t.feats_key}
        self.distill_terms = [n for n in self.loss if set(self.loss.input_keys_of(n)) & teacher_keys]
        for name in self.loss:
            missing = set(self.loss.input_keys_of(name)) - _BASE_KEYS - teacher_keys
            if missing:
                raise InputError(f"loss term {name!r} reads {sorted(missing)}, which neither the data nor "
                                 f"a teacher provides (teachers: {[t.name for t in self.teachers]})")
        needed = {k for n in self.loss for k in self.loss.input_keys_of(n)}
        self.want_feats = "student_feats" in needed
        self.teacher_feats_needed = {t.name: bool(t.feats_key and t.feats_key in needed) for t in self.teachers}
        self.teacher_needed = {t.name: t.output_key in needed or self.teacher_feats_needed[t.name]
                               for t in self.teachers}
        self.needs_target = "target" in needed
        self.distill_warmup = int(self.tcfg.get("distill_warmup_iters", 0))
        self.d_params = self.loss.discriminator_parameters()

        # data (rank 0 fills the teacher-output cache first; the other ranks then read it)
        dcfg = cfg.get("data") or {}
        cache_dir = str(resolve_path(dcfg.get("teacher_cache_dir")) or (self.out / "teacher_cache"))
        if not self.dist.is_main:
            barrier(self.dist)
        self.train_set, self.val_set, self.data_info = build_datasets(
            dcfg, data=self.data_dir, val=self.val_dir, seed=self.seed, needs_target=self.needs_target,
            teachers=self.teachers, cache_dir=cache_dir, device=self.device)
        if self.dist.is_main:
            barrier(self.dist)
        self.schedule = self._stages(cfg.get("data") or {})

        # optimisation
        params = list(self.model.parameters()) + self.loss.trainable_parameters()
        self.optimizer = build_optimizer(params, cfg.get("optimizer") or {"name": "adam", "lr": 1e-4})
        self.d_optimizer = (build_optimizer(self.d_params, cfg.get("discriminator_optimizer")
                                            or {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]})
                            if self.d_params else None)
        steps_per_epoch = self._steps_per_epoch(1)
        iterations = self.tcfg.get("iterations")
        if epochs is not None:
            self.epochs = int(epochs)
            self.max_iters = None
        elif iterations:
            self.max_iters = int(iterations)
            self.epochs = max(1, math.ceil(self.max_iters / max(1, steps_per_epoch)))
        else:
            self.epochs = int(self.tcfg.get("epochs", 1))
            self.max_iters = None
        total_iters = self.max_iters or sum(self._steps_per_epoch(e) for e in range(1, self.epochs + 1))
        self.scheduler = Scheduler(self.optimizer, cfg.get("scheduler"), total_iters=total_iters,
                                   total_epochs=self.epochs)
        self.amp_dtype = None
        if self.cuda and self.tcfg.get("amp", True):
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        decay = self.tcfg.get("ema_decay", 0.999)
        self.ema = ModelEMA(self.model, decay) if decay else None
        self.trainee = wrap(Trainee(self.model, self.want_feats), self.dist, self.device)
        broadcast_parameters(self.loss, self.dist)
        seed_everything(self.seed + self.dist.rank)   # different augmentation on every rank

        # bookkeeping
        self.epoch = 0                 # completed epochs
        self.global_step = 0           # optimiser steps
        self.batch_in_epoch = 0        # micro-batches of the current epoch already used
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": None, "metrics": {}}
        history: list[dict[str, Any]] = []
        if resume:
            history = self._resume()
            if epochs is not None:          # an explicit --epochs wins over the saved run length
                self.epochs, self.max_iters = int(epochs), None
        self.logger = RunLogger(self.out, enabled=self.dist.is_main, tensorboard=bool(self.tcfg.get("tensorboard", True)),
                                history=history)
        if self.dist.is_main:
            self._describe()

    # ------------------------------------------------------------------ set-up helpers
    def _build_loss(self, loss_cfg: dict[str, Any], vgg19: str | None) -> nn.Module:
        from training.losses import HybridLoss

        loss_cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in loss_cfg.items()}
        for name, spec in loss_cfg.items():
            if not isinstance(spec, dict):
                continue
            kind = spec.get("type", name)
            if kind == "perceptual":
                path = vgg19 or spec.get("weights") or os.environ.get("LOWLIGHT_VGG19")
                spec["weights"] = str(resolve_path(path)) if path else None
            if kind == "contrastive":
                self._fill_contrastive_channels(spec)
        self._loss_cfg = loss_cfg
        loss = HybridLoss.from_config(loss_cfg, missing_ok=True)
        for name, reason in loss.skipped.items():
            if self.dist.is_main:
                log.warning("loss term %r dropped: %s", name, reason)
        return loss

    def _fill_contrastive_channels(self, spec: dict[str, Any]) -> None:
        """Fill a contrastive term's ``student_channels`` / ``teacher_channels`` from a probe forward."""
        if "student_channels" in spec and "teacher_channels" in spec:
            return
        keys = list(spec.get("inputs") or ["student_feats", "teacher_feats"])
        layer = int(spec.get("layer", -1))
        probe = torch.rand(1, 3, 64, 64, device=self.device)
        with torch.no_grad():
            if "student_channels" not in spec:
                _, feats = self.model.forward_features(probe)
                spec["student_channels"] = int(select(feats, self.student_layers)[layer].shape[1])
            if "teacher_channels" not in spec:
                teacher = next((t for t in self.teachers if t.feats_key == keys[1]), None)
                if teacher is None:
                    raise InputError(f"contrastive term reads {keys[1]!r} but no teacher has feats_key {keys[1]!r}")
                _, feats = teacher.model.forward_features(probe)
                spec["teacher_channels"] = int(select(feats, teacher.layers)[layer].shape[1])
        self.model.train()

    def _stages(self, dcfg: dict[str, Any]) -> list[dict[str, Any]]:
        """The resolution-progressive schedule (:class:`training.data.ProgressiveSchedule`) as
        ``[{epoch, crop, batch, accumulation}]``. Stages without an ``accumulation`` use
        ``train.accumulation``; ``data.effective_batch`` (optional) fixes batch x accumulation."""
        from dataclasses import asdict

        from training.data.progressive import ProgressiveSchedule

        accum = int(self.tcfg.get("accumulation", 1))
        base = {"epoch": 1, "crop": int(dcfg.get("crop", 128)), "batch": int(dcfg.get("batch", 8))}
        stages = [{"accumulation": accum, **dict(st)} for st in (dcfg.get("progressive") or [base])]
        try:
            schedule = ProgressiveSchedule.from_config(stages, dcfg.get("effective_batch"))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"bad data.progressive schedule: {e}") from None
        self.schedule_text = schedule.describe()
        return [asdict(st) for st in schedule.stages]

    def stage(self, epoch: int) -> dict[str, Any]:
        """The schedule stage active in (1-based) ``epoch``."""
        active = [s for s in self.schedule if s["epoch"] <= epoch]
        return active[-1] if active else self.schedule[0]

    def _steps_per_epoch(self, epoch: int) -> int:
        s = self.stage(epoch)
        per_rank = math.ceil(len(self.train_set) / self.dist.world_size)
        batches = per_rank // s["batch"] if self.tcfg.get("drop_last", True) else math.ceil(per_rank / s["batch"])
        return max(1, batches // s["accumulation"])

    def _loader(self, epoch: int, start_batch: int) -> tuple[DataLoader, ResumableSampler]:
        from .loaders import collate, set_crop

        s = self.stage(epoch)
        set_crop(self.train_set, s["crop"])
        sampler = ResumableSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                   shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch, start=start_batch * s["batch"])
        gen = torch.Generator().manual_seed(self.seed * 100003 + epoch * 1009 + start_batch)
        workers = int((self.cfg.get("data") or {}).get("workers", 0))
        loader = DataLoader(self.train_set, batch_size=s["batch"], sampler=sampler, num_workers=workers,
                            drop_last=bool(self.tcfg.get("drop_last", True)) and len(sampler) >= s["batch"],
                            pin_memory=self.cuda, generator=gen, persistent_workers=False, collate_fn=collate)
        return loader, sampler

    def _describe(self) -> None:
        log.info("%s %s: %s (%.3fM params) on %s%s, %d train / %d val images, %d epochs, schedule %s",
                 self.role, self.cfg.get("name"), self.model.arch_name, self.model.num_parameters() / 1e6,
                 self.device, f" x{self.dist.world_size}" if self.dist.enabled else "", len(self.train_set),
                 len(self.val_set) if self.val_set is not None else 0, self.epochs,
                 self.schedule_text)
        if self.teachers:
            log.info("teachers: %s", ", ".join(f"{t.name} ({t.source})" for t in self.teachers))
        log.info("loss: %s", ", ".join(f"{n}={w:g}" for n, w in self.base_weights.items()))
        if self.distill_warmup and self.distill_terms:
            log.info("first %d iterations without distillation terms %s", self.distill_warmup, self.distill_terms)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: networks, EMA, optimisers, schedules, counters, RNG."""
        return {
            "preset": self.cfg.get("name"), "role": self.role, "epoch": self.epoch, "epochs": self.epochs,
            "max_iters": self.max_iters, "global_step": self.global_step, "batch_in_epoch": self.batch_in_epoch,
            "model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "loss": self.loss.state_dict(), "optimizer": self.optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict() if self.d_optimizer else None,
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "d_scaler": self.d_scaler.state_dict(), "best": self.best, "rng": rng_state(),
            "history": self.logger.rows if hasattr(self, "logger") else [],
        }

    def save_last(self) -> Path | None:
        """Write ``last.pt`` atomically (rank 0 only)."""
        if not self.dist.is_main:
            return None
        return save_state(self.out / "last.pt", self.state_dict())

    def _resume(self) -> list[dict[str, Any]]:
        state = load_state(self.out / "last.pt")
        if state.get("preset") != self.cfg.get("name") or state.get("role") != self.role:
            raise InputError(f"{self.out / 'last.pt'} belongs to {state.get('role')} {state.get('preset')!r}, "
                             f"not {self.role} {self.cfg.get('name')!r}")
        self.model.load_state_dict(state["model"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.d_optimizer and state.get("d_optimizer"):
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.d_scaler.load_state_dict(state["d_scaler"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.epochs, self.max_iters = int(state["epochs"]), state.get("max_iters")
        self.best = state["best"]
        set_rng_state(state["rng"])
        if self.dist.is_main:
            log.info("resumed from %s: %d epochs done%s, step %d", self.out / "last.pt", self.epoch,
                     f" + {self.batch_in_epoch} batches" if self.batch_in_epoch else "", self.global_step)
        return list(state.get("history") or [])

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _set_distillation(self) -> bool:
        """Zero the distillation terms during the warm-up; returns whether distillation is on."""
        on = self.global_step >= self.distill_warmup
        for name in self.distill_terms:
            self.loss.set_weight(name, self.base_weights[name] if on else 0.0)
        return on

    @torch.no_grad()
    def _teacher_entries(self, x: torch.Tensor, batch: dict[str, Any]) -> dict[str, Any]:
        """Outputs / features of the frozen teachers for ``x``; cached outputs in ``batch`` are used
        as they are, and only the rows the cache did not cover (``<key>__mask``) are computed."""
        out: dict[str, Any] = {}
        for t in self.teachers:
            if not self.teacher_needed[t.name]:
                continue
            want_feats = self.teacher_feats_needed[t.name]
            rows = None
            if t.output_key in batch and not want_feats:
                mask = batch.get(f"{t.output_key}__mask")
                if mask is None or bool(mask.all()):
                    continue        # every row cached by the data pipeline
                rows = (~mask).nonzero().flatten()
            with self._autocast():
                if want_feats:
                    y, feats = t.model.forward_features(x)
                    out[t.feats_key] = [f.float() for f in select(feats, t.layers)]
                else:
                    y = t.model(x if rows is None else x[rows])
            y = y.float().clamp(0, 1)
            if rows is not None:
                y = batch[t.output_key].float().index_copy(0, rows, y)
            out[t.output_key] = y
        return out

    def _micro_step(self, batch: dict[str, Any], distill: bool) -> dict[str, float]:
        x = batch["input"]
        ctx: dict[str, Any] = {"input": x, "target": batch.get("target"), "model": self.model}
        for t in self.teachers:
            if t.output_key in batch:
                ctx[t.output_key] = batch[t.output_key]
        if distill:
            ctx.update(self._teacher_entries(x, batch))
        for p in self.d_params:
            p.requires_grad_(False)
        with self._autocast():
            pred, feats, curves = self.trainee(x)
            ctx.update(pred=pred.float(), curves=curves,
                       student_feats=[f.float() for f in select(feats, self.student_layers)] if feats else None)
            total, logs = self.loss(ctx)
        accum = self._accum
        self.scaler.scale(total / accum).backward()
        if self.d_params:
            for p in self.d_params:
                p.requires_grad_(True)
            with self._autocast():
                d_loss, d_logs = self.loss.discriminator_loss(ctx)
            self.d_scaler.scale(d_loss / accum).backward()
            logs.update(d_logs)
        if not math.isfinite(logs["total"]):
            raise FloatingPointError(f"non-finite loss at step {self.global_step}: {logs}")
        return logs

    def _sync_side_grads(self) -> None:
        """Average the gradients DDP does not see (loss heads, discriminator) over processes."""
        if not self.dist.enabled:
            return
        for p in self.loss.parameters():
            if p.grad is not None:
                p.grad.copy_(all_reduce_mean(p.grad, self.dist))

    def _optimizer_step(self) -> None:
        self._sync_side_grads()
        clip = self.tcfg.get("grad_clip")
        if clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.d_optimizer is not None:
            self.d_scaler.step(self.d_optimizer)
            self.d_scaler.update()
            self.d_optimizer.zero_grad(set_to_none=True)
        self.scheduler.step_iter()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1

    # ------------------------------------------------------------------ epochs
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        s = self.stage(epoch)
        self._accum = s["accumulation"]
        loader, _ = self._loader(epoch, self.batch_in_epoch)
        self.model.train()
        sums: dict[str, float] = {}
        count = 0
        bar = tqdm(total=len(loader) + self.batch_in_epoch, initial=self.batch_in_epoch, disable=not self.progress,
                   desc=f"epoch {epoch}/{self.epochs}", unit="batch", leave=False, dynamic_ncols=True)
        self.optimizer.zero_grad(set_to_none=True)
        if self.d_optimizer is not None:
            self.d_optimizer.zero_grad(set_to_none=True)
        micro = 0
        for batch in loader:
            if self.max_iters is not None and self.global_step >= self.max_iters:
                break
            batch = _to(batch, self.device)
            distill = self._set_distillation()
            boundary = (micro + 1) % self._accum == 0
            sync = contextlib.nullcontext() if boundary or not self.dist.enabled else self.trainee.no_sync()
            with sync:
                logs = self._micro_step(batch, distill)
            micro += 1
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.update(1)
            if boundary:
                self._optimizer_step()
                self.batch_in_epoch += self._accum
                micro = 0
                bar.set_postfix(loss=f"{logs['total']:.4f}", lr=f"{self.scheduler.lrs[0]:.2e}")
                if self.global_step % int(self.tcfg.get("log_every", 20)) == 0:
                    for k, v in logs.items():
                        self.logger.scalar(f"train/{k}", v, self.global_step)
                    self.logger.scalar("train/lr", self.scheduler.lrs[0], self.global_step)
                if self.callback is not None:
                    self.callback(self)
        bar.close()
        means = {k: v / max(1, count) for k, v in sums.items()}
        keys = sorted(means)
        reduced = all_reduce_mean(torch.tensor([means[k] for k in keys], dtype=torch.float64), self.dist)
        return {k: float(v) for k, v in zip(keys, reduced.tolist())}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Metrics of the EMA (else current) network on the validation set; rank 0 computes them."""
        from .loaders import collate

        if not self.dist.is_main or self.val_set is None or len(self.val_set) == 0:
            return {}
        net = self.ema.module if self.ema is not None else self.model
        was_training = net.training
        net.eval()
        loader = DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0, collate_fn=collate)
        sums: dict[str, float] = {}
        n = 0
        for batch in loader:
            batch = _to(batch, self.device)
            x = batch["input"]
            reset = getattr(net, "reset_state", None)
            if callable(reset):   # validation images are independent photos, not frames of a video
                reset()
            if hasattr(net, "forward_with_curves"):
                pred, curves = net.forward_with_curves(x)
            else:
                pred, curves = net(x), None
            pred = pred.float().clamp(0, 1)
            values: dict[str, float] = {}
            target = batch.get("target")
            if target is not None:
                values.update({k: float(v.mean()) for k, v in quality(pred, target).items()})
            ctx = {"pred": pred, "input": x, "target": target, "curves": curves}
            vloss, computed = 0.0, False
            for name in self.loss:
                keys = self.loss.input_keys_of(name)
                w = self.base_weights[name]
                if w and all(ctx.get(k) is not None for k in keys) and not hasattr(self.loss.terms[name], "discriminator_loss"):
                    vloss += w * float(self.loss.terms[name](*(ctx[k] for k in keys)))
                    computed = True
            if computed:
                values["loss"] = vloss
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        net.train(was_training)
        return {f"val_{k}": v / max(1, n) for k, v in sums.items()}

    def _score(self, metrics: dict[str, float]) -> float | None:
        if "val_psnr" in metrics:
            return metrics["val_psnr"]
        if "val_loss" in metrics:
            return -metrics["val_loss"]
        return None

    def export(self, path: Path, metrics: dict[str, float], epoch: int) -> Path:
        """Save the EMA (else current) network in the runtime checkpoint format with its metadata."""
        net = self.ema.module if self.ema is not None else self.model
        meta = {
            "preset": self.cfg.get("name"), "role": self.role, "smoke": bool(self.cfg.get("smoke")),
            "train_data": self.data_dir, "val_data": self.val_dir or f"{self.data_dir} (held-out split)",
            "data": self.data_info, "epoch": epoch, "epochs": self.epochs, "global_step": self.global_step,
            "val_metrics": {k: float(v) for k, v in metrics.items()}, "ema": self.ema is not None,
            "teachers": [{"name": t.name, "arch": t.model.arch_name, "weights": t.source, "trained": t.trained}
                         for t in self.teachers],
            "loss_weights": self.base_weights, "loss_skipped": dict(self.loss.skipped),
            "optimizer": dict(self.cfg.get("optimizer") or {}), "world_size": self.dist.world_size,
            "label": f"{self.cfg.get('name')} {self.role}",
            # where offline teacher targets / an earlier stage came from (the preset's own record)
            "provenance": self.cfg.get("provenance") or {},
        }
        return save_checkpoint(path, net, meta)

    def fit(self) -> dict[str, Any]:
        """Train to the end (or until interrupted: then ``last.pt`` is saved and the
        ``KeyboardInterrupt`` re-raised). Returns ``{"best": ..., "epochs": ..., "global_step": ...}``."""
        try:
            while self.epoch < self.epochs:
                if self.max_iters is not None and self.global_step >= self.max_iters:
                    break
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                train_logs = self._train_epoch(epoch)
                metrics = broadcast_object(self.validate(), self.dist)
                score = self._score(metrics)
                self.scheduler.step_epoch(score)
                self.epoch, self.batch_in_epoch = epoch, 0
                s = self.stage(epoch)
                row: dict[str, Any] = {"epoch": epoch, "step": self.global_step,
                                       **{f"loss_{k}" if k != "total" else "loss": v for k, v in train_logs.items()},
                                       **metrics, "lr": self.scheduler.lrs[0], "crop": s["crop"],
                                       "batch": s["batch"], "accumulation": s["accumulation"],
                                       "time_s": round(time.perf_counter() - t0, 3)}
                if self.d_optimizer is not None:
                    row["lr_d"] = self.d_optimizer.param_groups[0]["lr"]
                self.logger.epoch(row)
                improved = score is None or score > self.best["score"] or self.best["epoch"] is None
                if improved:
                    self.best = {"score": score if score is not None else -math.inf, "epoch": epoch, "metrics": metrics}
                    if self.dist.is_main:
                        self.export(self.out / "best.pt", metrics, epoch)
                if self.dist.is_main:
                    log.info("epoch %d/%d: loss %.4f%s%s", epoch, self.epochs, train_logs.get("total", float("nan")),
                             "".join(f", {k} {v:.4f}" for k, v in metrics.items()), " (best)" if improved else "")
                self.save_last()
        except KeyboardInterrupt:
            self.save_last()
            if self.dist.is_main:
                log.warning("interrupted: state saved to %s (continue with --resume)", self.out / "last.pt")
            raise
        finally:
            if hasattr(self, "logger"):
                self.logger.close()
        return {"best": self.best, "epochs": self.epoch, "global_step": self.global_step}
