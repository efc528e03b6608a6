"""LYT-Net teacher (Brateanu et al., "LYT-NET: Lightweight YUV Transformer-based Network for Low-Light
Image Enhancement", 2024), run through onnxruntime from the published ONNX exports.

The exports (``lyt_net_lolv1_{320x240,640x360,800x400}.onnx``, a tf2onnx conversion of the official
Keras model) take one fixed spatial size each: float32 NHWC ``[N, H, W, 3]`` RGB scaled to [-1, 1]
(``x * 2 - 1``), output NHWC in [-1, 1] (tanh; mapped back with ``(y + 1) / 2``). ``N`` is symbolic
in all three files (a batch runs in one call; single runs give bit-identical results). The
architecture is not rewritten in PyTorch here: the module wraps the onnxruntime sessions and has no
torch parameters. onnxruntime (a dependency of the package: the CPU engine runs the student's ONNX export
with it) is imported only when a file is loaded.

**Any H, W: resize, not tiling.** :class:`LYTNetONNX` runs the whole frame at one of the fixed
sizes and carries the result back to full resolution (``up(net(down(x))) + (x - up(down(x)))``,
the formula of :func:`lowlight_rt.models.base.transfer_to_full_res` with detail gain 1 and
antialiased resampling). Measured on real images (``ir-rgb`` 600x400 low/high pairs, LIME):

* tiling disagrees with itself: LYT-Net's global/attention parts set each tile's brightness from the
  tile alone. In the overlaps of neighbouring tiles the mean brightness differed by up to 0.25
  (320x240 tiles, ir-rgb) and 0.49 / 0.38 (320x240 / 640x360 tiles, LIME), mean |a - b| 0.04-0.10,
  which feathering only smears into blotches; it also scored lower (ir-rgb, 12 images: PSNR 13.91
  / 14.04 tiled vs 14.11 resized; GT-mean-corrected 14.88 / 15.14 vs 15.20) and costs 2-6 runs.
  Letterboxing (aspect-preserving resize + reflect padding) did not help either (14.02-14.08 dB) and
  shifts brightness on square images (the padding enters the global statistics: LIME 7.png mean
  0.51 vs 0.39).
* the working *resolution* matters more than the aspect ratio: on 29 ir-rgb pairs the 320x240
  file (closest aspect to 600x400) gave GT-mean PSNR 15.55 / SSIM 0.642, 640x360 15.77 / 0.653,
  and 800x400 (a 1.33x stretch) 15.77 / 0.648; 640x360 beat 320x240 on 26 of 29 images.
  So the file is chosen by least total resampling, ``|ln(w / W)| + |ln(h / H)|`` (600x400 ->
  640x360, 1920x1080 -> 800x400, 326x326 -> 320x240), portrait frames are transposed first (all
  files are landscape; on 400x600 portrait crops: GT-mean PSNR 16.16 transposed vs 16.01
  stretched), and ``size="WxH"`` forces one file.
* detail gain 1 (not the brightening ratio of :meth:`EnhancementModel.enhance`): the ratio
  re-amplifies the sensor noise LYT-Net removed (SSIM 0.564 vs 0.653 at 640x360); gain 0 (plain
  upsampling) is 0.02 dB / 0.000-0.009 SSIM worse than 1.

Frozen teacher: ``forward`` always runs under ``torch.no_grad`` on the CPU (onnxruntime's CPU
provider; the result is moved back to the input's device and dtype). **Gradients are not
supported**: the output never requires grad and nothing flows back to the input.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lowlight_rt.errors import ModelError
from lowlight_rt.models import EnhancementModel, register_model

#: sha256 of the published LOL-v1 exports (informational: other LYT-Net exports load too)
KNOWN_SHA256 = {
    "lyt_net_lolv1_320x240.onnx": "33e4e15e5a202c583dd127b14a99e43c3569e5b304acf53de829c3d31713a1b4",
    "lyt_net_lolv1_640x360.onnx": "48d8af0bd7007f944cbd8c9660fc5968d00247ce9829a0e8c36412d859275d11",
    "lyt_net_lolv1_800x400.onnx": "f74d115813c04c1b69f91b93cf9a8eeafc9f4ddbc82efc3910808af3640d1d68",
}


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("the LYT-Net teacher runs through onnxruntime, which is not installed: "
                         "pip install 'onnxruntime>=1.18'") from None
    return onnxruntime


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)`` to ``size = (h, w)``, antialiased where it shrinks."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class _Session:
    """One onnxruntime session of a fixed-size LYT-Net export."""

    def __init__(self, path: Path, threads: int) -> None:
        ort = _onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        # the tf2onnx Resize nodes warn (once per node, per session) about a deprecated attribute on
        # onnxruntime's process-wide default logger: keep it to errors (this is process-wide)
        ort.set_default_logger_severity(3)
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise ModelError(f"{path} is not a readable ONNX model ({first})") from e
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(ins[0].shape) if len(ins) == 1 else []
        ok = (len(ins) == 1 and len(outs) == 1 and ins[0].type == "tensor(float)"
              and outs[0].type == "tensor(float)" and len(shape) == 4 and shape[3] == 3
              and all(isinstance(d, int) and d > 0 for d in shape[1:3])
              and list(outs[0].shape)[1:] == shape[1:]
              and (not isinstance(shape[0], int) or shape[0] == 1))
        if not ok:
            got = ", ".join(f"{t.name} {t.type} {t.shape}" for t in [*ins, *outs])
            raise ModelError(f"{path} is not a LYT-Net ONNX export (expected one float NHWC "
                             f"[N, H, W, 3] input and an output of the same size; got {got})")
        self.path = path
        self.input_name = ins[0].name
        self.hw: tuple[int, int] = (shape[1], shape[2])
        self.batch_one = isinstance(shape[0], int)  # N fixed to 1: run a batch one image at a time

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` in [0, 1] at exactly ``self.hw`` -> ``(B, 3, h, w)`` in [0, 1]."""
        a = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy() * 2.0 - 1.0, dtype=np.float32)
        chunks = [a[i:i + 1] for i in range(len(a))] if self.batch_one else [a]
        y = np.concatenate([self.session.run(None, {self.input_name: c})[0] for c in chunks])
        return ((torch.from_numpy(y).permute(0, 3, 1, 2) + 1.0) / 2.0).clamp(0, 1)


@register_model("lyt_net")
class LYTNetONNX(EnhancementModel):
    """LYT-Net through onnxruntime: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1], any H, W.

    Fixed sizes are handled by **resizing, not tiling**: the frame (transposed if portrait) is
    resampled to the loaded file needing the least resampling (``|ln(w/W)| + |ln(h/H)|``), enhanced,
    and carried back to full resolution as ``up(out) + detail_gain * (x - up(down(x)))``. Tiles were
    rejected because LYT-Net's global/attention parts give each tile its own brightness (overlapping
    tiles differed by up to 0.25-0.49 in mean brightness on real images, and scored lower); the
    working resolution mattered more than the aspect ratio (see the module docstring for the numbers).

    Args:
        files: paths of the ONNX exports (one fixed size each; at most one file per size).
        sha256: their sha256 digests, one per file; checked on construction (``ModelError`` if a
            file changed). Empty: computed. Both are in ``config``, so
            :func:`training.data.cache.teacher_fingerprint` changes when a file does (and when the
            files move: the paths are part of it).
        size: ``"auto"`` or ``"WxH"`` to always use that file.
        detail_gain: weight of the full-resolution detail the network did not see (1 keeps it as is).
        threads: onnxruntime intra-op threads (not part of ``config``: it does not change results).

    A frozen teacher: no torch parameters, ``forward`` runs under ``torch.no_grad`` on the CPU,
    **gradients are not supported** (the output never requires grad). Built without files (as
    ``create_model("lyt_net")`` does) it cannot run: use :func:`load_lyt_net`.
    """

    default_proc_size = None  # forward() picks its own working size and keeps full-res detail
    size_multiple = 1

    def __init__(self, files: Sequence[str] = (), sha256: Sequence[str] = (), size: str = "auto",
                 detail_gain: float = 1.0, threads: int = 1) -> None:
        paths = [Path(f) for f in files]
        digests = [str(d) for d in sha256]
        if digests and len(digests) != len(paths):
            raise ModelError(f"lyt_net: {len(paths)} file(s) but {len(digests)} sha256 digest(s)")
        for p in paths:
            if not p.is_file():
                raise ModelError(f"{p}: LYT-Net ONNX file not found")
        actual = [sha256_file(p) for p in paths]
        for p, want, got in zip(paths, digests, actual):
            if want != got:
                raise ModelError(f"{p} changed since this config was written (sha256 {got[:12]}..., "
                                 f"expected {want[:12]}...)")
        size = str(size)
        super().__init__(files=[str(p) for p in paths], sha256=actual, size=size,
                         detail_gain=float(detail_gain))
        self.threads = int(threads)
        self.detail_gain = float(detail_gain)
        self._sessions: list[_Session] = []
        self._open()
        if size != "auto" and self._sessions and self._forced() is None:
            have = ", ".join(f"{s.hw[1]}x{s.hw[0]}" for s in self._sessions)
            raise ModelError(f"lyt_net: no loaded file has size {size!r} (have {have})")

    def _open(self) -> None:
        sessions = [_Session(Path(f), self.threads) for f in self.config["files"]]
        seen: dict[tuple[int, int], Path] = {}
        for s in sessions:
            if s.hw in seen:
                raise ModelError(f"{seen[s.hw]} and {s.path} both take {s.hw[1]}x{s.hw[0]}: pass one of them")
            seen[s.hw] = s.path
        self._sessions = sessions

    # onnxruntime sessions cannot be pickled / deep-copied: rebuild them from the config
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_sessions"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._open()

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """``(w, h)`` of every loaded file."""
        return [(s.hw[1], s.hw[0]) for s in self._sessions]

    def _forced(self) -> _Session | None:
        return next((s for s in self._sessions if f"{s.hw[1]}x{s.hw[0]}" == self.config["size"]), None)

    def pick(self, height: int, width: int) -> _Session:
        """The session used for a (landscape) ``height x width`` frame."""
        if not self._sessions:
            raise ModelError("lyt_net was built without ONNX files: load it with load_lyt_net(path) "
                             "or load_teacher('lyt_net')")
        forced = self._forced() if self.config["size"] != "auto" else None
        if forced is not None:
            return forced
        # least total resampling; on a tie the larger file
        return min(self._sessions, key=lambda s: (abs(math.log(s.hw[1] / width)) + abs(math.log(s.hw[0] / height)),
                                                 -s.hw[0] * s.hw[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1] (no gradient)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
        with torch.no_grad():
            full = x.detach().to("cpu", torch.float32).clamp(0, 1)
            portrait = full.shape[-2] > full.shape[-1]
            if portrait:  # every export is landscape: transpose rather than stretch
                full = full.transpose(-2, -1)
            session = self.pick(*full.shape[-2:])
            low = _resample(full, session.hw)
            out = session.run(low)
            size = tuple(full.shape[-2:])
            if size != session.hw:
                out = (_resample(out, size) + self.detail_gain * (full - _resample(low, size))).clamp(0, 1)
            if portrait:
                out = out.transpose(-2, -1)
            return out.contiguous().to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)

    def enhance(self, full: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(full)``: the working size is the ONNX file's, so ``low`` is not used."""
        return self.forward(full)


def _onnx_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".onnx" and p.is_file())
        if not files:
            raise ModelError(f"{path}: no .onnx files in this folder")
        return files
    if path.is_file():
        return [path]
    raise ModelError(f"{path}: no such LYT-Net ONNX file or folder")


def load_lyt_net(path_or_dir: str | os.PathLike, *, size: str = "auto", detail_gain: float = 1.0,
                 threads: int = 1) -> LYTNetONNX:
    """Load LYT-Net from one ONNX export or a folder of them (every ``*.onnx`` in it, one per size).

    Returns the model in eval mode. ``ModelError`` with one line if the path is missing, a file is
    not a readable ONNX model or not a fixed-size NHWC image-to-image export, or onnxruntime is not
    installed.
    """
    files = _onnx_files(Path(path_or_dir).expanduser())
    _onnxruntime()  # a clear message before anything else when it is missing
    return LYTNetONNX(files=[str(f.resolve()) for f in files], size=size, detail_gain=detail_gain,
                      threads=threads).eval()
