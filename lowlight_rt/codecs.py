"""Video codec settings in one place: the x264 defaults, and the run-time choice of NVDEC / NVENC.

The x264 defaults (:data:`X264_CRF`, :data:`X264_PRESET`, :data:`X264_TUNE`) are what the CLI, the
jobs, the viewer's recorder and ``lowlight-rt bench`` use; docs/PERFORMANCE.md has the measurements
behind them (speed, file size and PSNR of the written video against the uncompressed enhanced frames).

GPU codecs: PyAV's wheels are built with FFmpeg's ``h264_cuvid`` (NVDEC) and ``h264_nvenc`` (NVENC)
*wrappers* even where no NVIDIA driver exists, so ``av.codecs_available`` listing them proves
nothing: :func:`choose_codecs` also opens each one once (:func:`codec_opens`) and falls back to
FFmpeg's software decoder and libx264 when that fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Collection

log = logging.getLogger(__name__)

#: x264 constant rate factor (0..51, lower = better and bigger; x264's own default is 23). 20, not
#: the earlier 18: 5 % less CPU per 720p frame and 20-24 % smaller files, and the written video stays
#: 40.6 dB (generated night scene) / 49.3 dB (real night clip) PSNR from the uncompressed enhanced
#: frames; CRF 23 came within 0.7 dB of the 38 dB floor (docs/PERFORMANCE.md)
X264_CRF = 20
#: x264 preset (speed / compression trade-off)
X264_PRESET = "veryfast"
#: x264 parameters added to a preset (``x264-params`` syntax). veryfast with ``subme=1`` (superfast's
#: sub-pixel motion refinement, one iteration instead of two): x264 takes ~30 % less CPU on the student's
#: enhanced 720p frames (real night clip 27 -> 17-19 ms per frame, generated clip 45-47 -> 31 ms), the
#: written video's PSNR is the same on the real clip (49.4 dB, file 7 % larger) and 0.8 dB lower on the
#: generated one (40.4 dB, same size). Whole superfast was cheaper still but made the generated clip's
#: file 1.6x larger at the same PSNR (docs/PERFORMANCE.md, section 7). ``partitions=i8x8,i4x4`` (no 8x8
#: and smaller inter partitions, as superfast): another 3-8 ms less x264 CPU per 720p frame on four clips
#: (generated 51.8 -> 43.7 ms decode + encode, real night clip 32.1 -> 28.2), PSNR within 0.07 dB, files
#: within 2.5 % (docs/PERFORMANCE.md, section 10).
X264_PRESET_PARAMS: dict[str, str] = {"veryfast": "subme=1:partitions=i8x8,i4x4"}
#: x264 tune (``None``: none)
X264_TUNE: str | None = None

SOFTWARE_ENCODER = "libx264"
GPU_DECODER = "h264_cuvid"
GPU_ENCODER = "h264_nvenc"


def x264_options(crf: int = X264_CRF, preset: str = X264_PRESET, tune: str | None = X264_TUNE) -> dict[str, str]:
    """libx264 options for PyAV's ``stream.options``."""
    options = {"crf": str(int(crf)), "preset": preset}
    if preset in X264_PRESET_PARAMS:
        options["x264-params"] = X264_PRESET_PARAMS[preset]
    if tune:
        options["tune"] = tune
    return options


def nvenc_options(crf: int = X264_CRF) -> dict[str, str]:
    """h264_nvenc options of about the quality of libx264 at ``crf``: constant quality (VBR with
    ``cq``), preset p4 (NVENC's balanced one)."""
    return {"rc": "vbr", "cq": str(int(crf)), "b": "0", "preset": "p4"}


@dataclass(frozen=True)
class CodecChoice:
    """What a file job decodes and encodes with.

    Attributes:
        decoder: FFmpeg decoder name, or ``None`` for FFmpeg's default (software) decoder.
        encoder: FFmpeg encoder name (``libx264`` or ``h264_nvenc``).
        options: encoder options for PyAV's ``stream.options``.
        notes: why each choice was made (one short line each).
    """

    decoder: str | None
    encoder: str
    options: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def gpu(self) -> bool:
        return self.decoder == GPU_DECODER or self.encoder == GPU_ENCODER


def codec_opens(name: str, mode: str) -> bool:
    """Whether FFmpeg codec ``name`` can be opened here (``mode`` ``"r"``: decoder, ``"w"``: encoder).

    An encoder is opened at 256x256 yuv420p; NVENC / NVDEC wrappers fail here without an NVIDIA
    driver and GPU.
    """
    import av

    try:
        ctx = av.CodecContext.create(name, mode)
        if mode == "w":
            from fractions import Fraction

            ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
            ctx.time_base = Fraction(1, 30)
        ctx.open()
        ctx.close() if hasattr(ctx, "close") else None
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        log.debug("codec %s (%s) does not open: %s", name, mode, exc)
        return False


def choose_codecs(use_gpu: bool | None = None, *, crf: int = X264_CRF, preset: str = X264_PRESET,
                  tune: str | None = X264_TUNE, source_codec: str | None = "h264",
                  available: Collection[str] | None = None,
                  opens: Callable[[str, str], bool] = codec_opens) -> CodecChoice:
    """Pick the decoder and encoder at run time.

    Args:
        use_gpu: ``False``: software only; ``True`` or ``None`` (auto): NVDEC for H.264 inputs and
            NVENC when FFmpeg has them *and* they open here, else software (with a note why).
        crf, preset, tune: the software encoder's settings (``crf`` also sets NVENC's ``cq``).
        source_codec: the input's codec name (NVDEC is only used for ``h264``).
        available: codec names to look in (default ``av.codecs_available``; tests pass a fake list).
        opens: the probe (default :func:`codec_opens`; tests pass a fake).
    """
    if available is None:
        import av

        available = av.codecs_available
    notes: list[str] = []
    decoder: str | None = None
    encoder, options = SOFTWARE_ENCODER, x264_options(crf, preset, tune)
    if use_gpu is False:
        return CodecChoice(None, encoder, options, ("software codecs requested",))
    if source_codec == "h264":
        if GPU_DECODER not in available:
            notes.append(f"{GPU_DECODER} not in this FFmpeg build: software decoding")
        elif not opens(GPU_DECODER, "r"):
            notes.append(f"{GPU_DECODER} does not open (no NVIDIA GPU/driver): software decoding")
        else:
            decoder = GPU_DECODER
            notes.append(f"decoding with {GPU_DECODER} (NVDEC)")
    if GPU_ENCODER not in available:
        notes.append(f"{GPU_ENCODER} not in this FFmpeg build: {SOFTWARE_ENCODER}")
    elif not opens(GPU_ENCODER, "w"):
        notes.append(f"{GPU_ENCODER} does not open (no NVIDIA GPU/driver): {SOFTWARE_ENCODER}")
    else:
        encoder, options = GPU_ENCODER, nvenc_options(crf)
        notes.append(f"encoding with {GPU_ENCODER} (NVENC, cq {int(crf)})")
    return CodecChoice(decoder, encoder, options, tuple(notes))
