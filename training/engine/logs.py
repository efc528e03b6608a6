"""Run logs: a CSV row and TensorBoard scalars per epoch, and a training-history figure (PNG)."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("training")


class RunLogger:
    """Writes ``history.csv``, TensorBoard events under ``tb/`` and ``history.png`` into ``out_dir``.

    ``enabled=False`` (non-zero DDP ranks) makes every method a no-op. Rows are kept in memory and
    the CSV is rewritten whole at each epoch, so a resumed run's file has no duplicated epochs.
    """

    def __init__(self, out_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 history: list[dict[str, Any]] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = list(history or [])
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is in the [train] extra
                log.warning("tensorboard is not installed; TensorBoard logging is off")
            else:
                self.writer = SummaryWriter(str(self.out_dir / "tb"))

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A per-iteration scalar (TensorBoard only)."""
        if self.writer is not None and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)

    def epoch(self, row: dict[str, Any]) -> None:
        """Record one epoch's ``row`` (``epoch`` plus flat numeric values) everywhere."""
        if not self.enabled:
            return
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [dict(row)]
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            self.writer.flush()
        self.write_csv()
        self.plot()

    def write_csv(self) -> Path:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        path = self.out_dir / "history.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        return path

    def plot(self) -> Path | None:
        """Save ``history.png``: training/validation losses, PSNR/SSIM, learning rates per epoch."""
        if not self.rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.rows]

        def series(prefix: str) -> dict[str, list[float]]:
            keys = sorted({k for r in self.rows for k in r if k.startswith(prefix)})
            return {k: [float(r.get(k, float("nan"))) for r in self.rows] for k in keys}

        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for key, ys in series("loss").items():
            axes[0].plot(epochs, ys, label=key, marker=".")
        for key, ys in series("val_loss").items():
            axes[0].plot(epochs, ys, label=key, marker=".", linestyle="--")
        axes[0].set_title("losses")
        if any(v > 0 for ys in series("loss").values() for v in ys if math.isfinite(v)):
            axes[0].set_yscale("log")
        ax_p = axes[1]
        for key, ys in series("val_psnr").items():
            ax_p.plot(epochs, ys, label=key, marker=".")
        ax_p.set_ylabel("PSNR (dB)")
        ax_s = ax_p.twinx()
        for i, (key, ys) in enumerate(series("val_ssim").items()):
            ax_s.plot(epochs, ys, label=key, marker=".", linestyle="--", color=("tab:red", "tab:purple")[i % 2])
        ax_s.set_ylabel("SSIM")
        axes[1].set_title("validation")
        for key, ys in series("lr").items():
            axes[2].plot(epochs, ys, label=key, marker=".")
        axes[2].set_title("learning rates")
        for ax in axes:
            ax.set_xlabel("epoch")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        if ax_s.get_legend_handles_labels()[0]:
            ax_s.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = self.out_dir / "history.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
